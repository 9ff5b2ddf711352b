"""Every error the control API gives is JSON `{"error": "<what went wrong and what to do>"}`.

The handlers here turn the framework's exceptions (unknown path, wrong method, a request
that does not validate) and Hearth's own (`DeployError`, `NotFound`) into that shape, and
`declare()` puts the same answers in the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

from hearth.api.models import Error
from hearth.control import DeployError, NotFound
from hearth.sandbox.reach import Conflict, Missing, ReachError
from hearth.spec import NAME
from hearth.store.backup import BackupError

DESCRIPTIONS = {
    400: "The request cannot be carried out as sent; the message says what to change.",
    401: "Missing or invalid token: send 'Authorization: Bearer <token>'.",
    403: "The token's scope does not allow this request; the message names the scope.",
    404: (
        "No function by that name (names that cannot be function names included), or no "
        "token, key or secret by that id or name."
    ),
    409: "The change was refused; what served before keeps serving.",
    413: "The bundle is over the daemon's size limit.",
    415: "The body is not of the declared media type.",
    422: "A parameter or the body does not match this document; the message names it.",
}
# Operations whose request body may hold a secret: never echoed in an error.
SECRET_BODIES = frozenset({"/v1/functions/{name}/secrets/{key}"})
UNREADABLE_BODY = "There was an error parsing the body"  # FastAPI's 400: not UTF-8, say
NAME_RULE = (
    "function names are lowercase letters, digits and '-', starting with a letter, "
    "at most 63 characters"
)


def declare(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of an operation that can answer these error codes."""
    return {code: {"model": Error, "description": DESCRIPTIONS[code]} for code in codes}


def error(status: int, message: str, **extra: str) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allowed = _allowed_methods(app, request)
            headers["Allow"] = ", ".join(allowed)
            message = (
                f"{request.method} is not allowed on {request.url.path}; "
                f"allowed: {', '.join(allowed)}"
            )
        elif message == UNREADABLE_BODY:
            message = "the body is not JSON: send UTF-8 JSON with Content-Type: application/json"
        elif exc.status_code == 404 and message == HTTPStatus.NOT_FOUND.phrase:
            message = (
                f"no API endpoint {request.method} {request.url.path}; "
                "the endpoints are listed at /docs"
            )
        response = error(exc.status_code, message)
        response.headers.update(headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        route = request.scope.get("route")
        secret = getattr(route, "path", None) in SECRET_BODIES
        return error(422, "invalid request: " + describe_invalid(exc.errors(), not secret))

    @app.exception_handler(DeployError)
    async def refused(request: Request, exc: DeployError) -> JSONResponse:
        return error(409, str(exc))

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        name = str(exc.args[0])
        hint = "" if NAME.fullmatch(name) else f" ({NAME_RULE})"
        return error(404, f"no function named {name!r}{hint}", function=name)

    @app.exception_handler(ReachError)
    async def unreachable(request: Request, exc: ReachError) -> JSONResponse:
        """A path in a function's data folder: not there, not of that kind, or not plain."""
        status = 404 if isinstance(exc, Missing) else 409 if isinstance(exc, Conflict) else 400
        return error(status, str(exc))

    @app.exception_handler(BackupError)
    async def not_taken(request: Request, exc: BackupError) -> JSONResponse:
        return error(503, f"the backup failed: {exc}")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the traceback after this answer is sent.
        return error(500, f"internal error: {type(exc).__name__}: {exc}")


def describe_invalid(errors: Sequence[Any], show_input: bool = True) -> str:
    """Pydantic's errors as one line a person can act on, naming each field (and what it
    got, unless the body may hold a secret)."""
    parts = []
    for item in errors:
        source, *path = (str(part) for part in item.get("loc", ()))
        kind = item.get("type", "")
        message = str(item.get("msg", "invalid"))
        if kind == "json_invalid":
            parts.append(f"the body is not valid JSON ({item.get('ctx', {}).get('error', '')})")
            continue
        if source == "body" and not path:
            if kind == "missing":
                parts.append("the JSON body is missing")
            else:
                parts.append(f"the body: {message} (send JSON with Content-Type: application/json)")
            continue
        where = {
            "body": "field",
            "query": "query parameter",
            "path": "path parameter",
            "header": "header",
        }.get(source, source)
        name = ".".join(path) or "?"
        got = "" if kind == "missing" or not show_input else f" (got {_short(item.get('input'))})"
        parts.append(f"{where} {name!r}: {message[:1].lower()}{message[1:]}{got}")
    return "; ".join(parts) or "the request does not match the API document"


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves on this path (each route holds the methods of one)."""
    scope = {**request.scope, "method": "\0"}  # matches no route fully: PARTIAL on the path
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(scope)
            if match != Match.NONE:
                methods |= route.methods
    return sorted(methods)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
