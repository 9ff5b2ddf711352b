"""The control API. Every error is JSON: {"error": "<what went wrong and what to do>"}.

The OpenAPI document (GET /openapi.json) is what clients are generated from, so every
operation declares each answer it can give: models for JSON, `application/x-ndjson` for
streams, `text/plain` for logs, and the error codes (see `hearth.api.errors`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError
from starlette.background import BackgroundTask
from starlette.responses import Response

import hearth
from hearth.api import errors
from hearth.api.access import access_routes
from hearth.api.deploy import deploy_stream, read_body, read_bundle
from hearth.api.errors import NAME_RULE, declare
from hearth.api.invocations import invocation_routes
from hearth.api.models import (
    DEPLOY_LINE_SCHEMA,
    Change,
    DataListing,
    DataWritten,
    Event,
    FunctionBrief,
    FunctionDetail,
    FunctionMetrics,
    Health,
    Info,
    MetricsNow,
    Removed,
    Rescaled,
    RollbackBody,
    ScaleBody,
    ScheduleState,
    TrafficBody,
    Version,
)
from hearth.api.params import Name, NameInPath
from hearth.api.scopes import Scope, allowed, by_capability
from hearth.control import ControlPlane
from hearth.invocations import Invocations
from hearth.metrics.exposition import CONTENT_TYPE
from hearth.metrics.monitor import WINDOW, Monitor
from hearth.sandbox import reach
from hearth.scheduler.runner import Scheduler
from hearth.spec import NAME
from hearth.store import Store
from hearth.store import backup as backups
from hearth.supervisor import Supervisor

OPEN_PATHS = frozenset({"/v1/health", "/docs", "/openapi.json"})
# Operations a token is not needed for, because what the path names is the credential
# (`hearth.api.scopes.by_capability`).
BY_CAPABILITY = frozenset({("get", "/v1/invocations/{invocation}")})
DASHBOARD = Path(__file__).parent / "dashboard"
# The dashboard's files hold no data (each call they make sends the token the user typed);
# the policy keeps them from loading anything but themselves and from being framed.
DASHBOARD_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidated (ETag): a new Hearth's dashboard at once
}
BUNDLE_TYPE = "application/gzip"
OCTETS = "application/octet-stream"
MAX_DATA_FILE = 64 * 1024**2  # a file read or written through `hearth data`
# A step of a path: 1-255 bytes, no '/' or NUL, not '.' nor '..'.
_STEP = r"(?:[^/.\x00][^/\x00]{0,254}|\.[^/.\x00][^/\x00]{0,253}|\.\.[^/\x00]{1,253})"
DataPath = Annotated[
    str,
    Query(
        max_length=4096,
        pattern=f"^/?(?:{_STEP}/)*(?:{_STEP})?$",
        description="A path inside the data folder ('' is the folder itself); no '.' or "
        "'..' steps, each step at most 255 characters.",
    ),
]
DataFile = Annotated[
    str,
    Query(
        max_length=4096,
        pattern=f"^/?(?:{_STEP}/)*{_STEP}$",
        description="A file's path inside the data folder: no '.' or '..' steps, each "
        "step at most 255 characters.",
    ),
]
NDJSON = "application/x-ndjson"
TOKEN_HELP = (
    "missing or invalid token: send 'Authorization: Bearer <token>' "
    "(the admin token is in the data directory's 'token' file; 'hearth tokens create' "
    "makes others)"
)


def _strict_bool(value: Any) -> Any:
    """Only 'true' and 'false': a typo must not turn a finite read into an endless stream."""
    if isinstance(value, str):
        if value not in ("true", "false"):
            raise PydanticCustomError("bool_parsing", "Input should be true or false")
        return value == "true"
    return value


Follow = Annotated[
    bool,
    BeforeValidator(_strict_bool),
    Query(description="Keep the answer open and stream what comes next."),
]


class ControlApi(FastAPI):
    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            _finish_document(super().openapi())
        assert self.openapi_schema is not None
        return self.openapi_schema


class ArchiveResponse(FileResponse):
    """A backup on its way to the client in 1 MiB reads rather than 64 KiB: the API shares
    the event loop with the gateway, and every read is a trip through it."""

    chunk_size = 1024 * 1024


def create_app(
    plane: ControlPlane,
    store: Store,
    supervisor: Supervisor,
    monitor: Monitor,
    invocations: Invocations,
    scheduler: Scheduler | None = None,
) -> FastAPI:
    app = ControlApi(title="Hearth control API", version=hearth.__version__, redirect_slashes=False)
    errors.install(app)

    @app.middleware("http")
    async def authenticate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # Before routing and before any body is read: nothing is open by mistake. The path
        # is the one routing matches (decoded), so the scope decides on what will run.
        path = request.scope["path"]
        if is_dashboard(request.method, path):
            response = await call_next(request)
            response.headers.update(DASHBOARD_HEADERS)
            return response
        # One invocation is read by its id alone (hearth.api.scopes): any Authorization
        # sent along (a private function's key, say) is not looked at.
        if path not in OPEN_PATHS and not by_capability(request.method, path):
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            stored = store.token_scope(token) if scheme.lower() == "bearer" and token else None
            if stored is None:
                return JSONResponse(
                    {"error": TOKEN_HELP}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
            scope = Scope.parse(stored)
            if not allowed(scope, request.method, path):
                return JSONResponse({"error": _refusal(scope, request.method)}, status_code=403)
            request.state.scope = scope
        return await call_next(request)

    @app.get("/v1/health", response_model=Health)
    async def health() -> dict[str, Any]:
        return {"ok": True, "version": hearth.__version__}

    @app.get("/v1/info", response_model=Info)
    async def info(request: Request) -> dict[str, Any]:
        config = plane.config  # read late: ports chosen by the OS are known after start
        everything = _scope(request).kind != "deploy"  # zygotes serve other tenants too
        return {
            "version": hearth.__version__,
            "gateway": config.gateway_url,
            "api": config.api_url,
            "domain": config.domain,
            "data_dir": str(config.data_dir),
            "sandbox": supervisor.planner.describe(),
            "zygotes": [
                {"key": zygote.key, "pid": zygote.pid}
                for zygote in supervisor.all_zygotes()
                if zygote.alive and everything
            ],
        }

    @app.get("/v1/functions", response_model=list[FunctionBrief])
    async def list_functions(request: Request) -> list[dict[str, Any]]:
        """Every function; for a deploy:NAME token, NAME alone."""
        scope = _scope(request)
        return plane.views.overview(scope.sees)

    @app.get("/v1/functions/{name}", response_model=FunctionDetail, responses=declare(404))
    async def describe(name: Name) -> dict[str, Any]:
        info = plane.views.describe(name)
        info["invocations"] = invocations.store.counts(name)
        return info

    @app.get("/v1/functions/{name}/versions", response_model=list[Version], responses=declare(404))
    async def versions(name: Name) -> list[dict[str, Any]]:
        return plane.views.versions(name)

    @app.post(
        "/v1/functions/{name}/traffic",
        response_model=Change,
        responses=declare(400, 404, 409, 422),
    )
    async def traffic(name: Name, body: TrafficBody) -> dict[str, Any]:
        """Split traffic between versions, e.g. {"weights": {"3": 90, "4": 10}}."""
        return await plane.rollouts.set_traffic(name, body.split())

    @app.patch(
        "/v1/functions/{name}/scale",
        response_model=Rescaled,
        responses=declare(400, 404, 409, 422),
    )
    async def scale(name: Name, body: ScaleBody) -> dict[str, Any]:
        """Change [scale] settings live, e.g. {"min": 2, "max": 20}: no deploy, no restart."""
        return await plane.rollouts.rescale(name, body.changes())

    @app.post(
        "/v1/functions/{name}/rollback",
        response_model=Change,
        responses=declare(400, 404, 409, 422),
    )
    async def rollback(
        name: Name, body: Annotated[RollbackBody | None, Body()] = None
    ) -> dict[str, Any]:
        """Back to version `to`, or to the newest good version before the serving one."""
        return await plane.rollouts.rollback(name, body.to if body else None)

    @app.get(
        "/v1/functions/{name}/events",
        response_model=list[Event],
        responses={
            200: {"content": {NDJSON: {"schema": {"$ref": "#/components/schemas/Event"}}}},
            **declare(404, 422),
        },
    )
    async def events(
        name: Name,
        limit: Annotated[int, Query(ge=1, le=10_000, description="Newest events to show.")] = 100,
        follow: Follow = False,
    ) -> list[dict[str, Any]] | StreamingResponse:
        """The function's events, oldest first; with follow=true, one JSON object per line,
        without end."""
        plane.views.describe(name, brief=True)
        if not follow:
            return store.events(name, limit)

        async def stream() -> AsyncIterator[str]:
            batch, last = limit, 0
            while True:
                for event in store.events(name, batch, after=last):
                    last = event["id"]
                    yield json.dumps(event) + "\n"
                batch = 10_000  # after the history, everything new
                await asyncio.sleep(0.25)

        return StreamingResponse(stream(), media_type=NDJSON)

    @app.post(
        "/v1/functions/{name}/versions",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "Progress as JSON lines; the last is {'result'} or {'error'}.",
                "content": {NDJSON: {"schema": DEPLOY_LINE_SCHEMA}},
            },
            **declare(400, 413, 415),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The bundle: a tar.gz of the function's folder.",
                "content": {
                    BUNDLE_TYPE: {"schema": {"type": "string", "format": "binary", "minLength": 1}}
                },
            }
        },
    )
    async def deploy(request: Request, name: NameInPath) -> StreamingResponse:
        """Upload a bundle (tar.gz) as a new version. The answer streams progress as JSON
        lines; the last line is {"result": {...}} or {"error": "..."}."""
        if not NAME.fullmatch(name):  # fullmatch: NAME's `$` would let "name\n" through
            raise HTTPException(400, f"invalid function name {name!r}: {NAME_RULE}")
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        # No Content-Type is taken as the bundle (what else); a different one is a mistake.
        if media_type not in ("", BUNDLE_TYPE):
            raise HTTPException(
                415,
                f"send the bundle as Content-Type: {BUNDLE_TYPE} (a tar.gz of the function's "
                f"folder; 'hearth deploy' makes one), not {media_type}",
            )
        data = await read_bundle(request, plane.config.max_bundle)
        return StreamingResponse(deploy_stream(plane, name, data), media_type=NDJSON)

    @app.delete("/v1/functions/{name}", response_model=Removed, responses=declare(404, 422))
    async def remove(
        name: Name,
        purge: Annotated[
            bool,
            BeforeValidator(_strict_bool),
            Query(description="Remove its data (HEARTH_DATA) too; else it is kept."),
        ] = False,
    ) -> dict[str, Any]:
        """Drain, stop and forget the function; its data stays unless purge=true."""
        return await plane.rollouts.remove(name, purge)

    @app.get(
        "/v1/functions/{name}/logs",
        response_class=Response,  # no default media type: errors stay application/json
        responses={
            200: {
                "description": "Lines of stdout/stderr, each with time and instance id.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **declare(404, 422),
        },
    )
    async def logs(
        name: Name,
        tail: Annotated[int, Query(ge=0, le=100_000, description="Lines of history.")] = 100,
        follow: Follow = False,
        access: Annotated[
            bool,
            BeforeValidator(_strict_bool),
            Query(description="The access log instead: a JSON line per request."),
        ] = False,
    ) -> Response:
        """The function's output (or its access log); with follow=true, without end."""
        plane.views.describe(name, brief=True)
        book = monitor.access.book if access else plane.logs
        if not follow:
            return PlainTextResponse("".join(book.tail(name, tail)))
        if access:  # written by the access log's own process: the file is watched

            async def watched() -> AsyncIterator[str]:
                for line in book.tail(name, tail):
                    yield line
                async for line in book.watch(name):
                    yield line

            return StreamingResponse(watched(), media_type="text/plain")
        queue = book.follow(name)

        async def stream() -> AsyncIterator[str]:
            try:
                for line in book.tail(name, tail):
                    yield line
                while True:
                    yield await queue.get()
            finally:
                book.unfollow(name, queue)

        return StreamingResponse(stream(), media_type="text/plain")

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus' text exposition format: every function's "
                "requests, latency, queue, instances, starts, exits and deploys, and the "
                "daemon's own process.",
                "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> Response:
        return Response(await monitor.scrape(), media_type=CONTENT_TYPE)

    @app.get("/v1/metrics", response_model=MetricsNow)
    async def metrics_now(request: Request) -> dict[str, Any]:
        """Each serving version's numbers over the last seconds (what `hearth top` shows);
        for a deploy:NAME token, NAME alone."""
        scope = _scope(request)
        rows = [row for row in monitor.current() if scope.sees(row["function"])]
        return {"window_s": WINDOW, "versions": rows}

    @app.get(
        "/v1/functions/{name}/metrics",
        response_model=FunctionMetrics,
        responses=declare(404, 422),
    )
    async def function_metrics(
        name: Name,
        seconds: Annotated[
            int,
            Query(
                ge=1,
                le=7 * 24 * 3600,
                description="How far back: 1 s points for the last 15 minutes, 1 minute "
                "points before that (kept 7 days).",
            ),
        ] = 900,
    ) -> dict[str, Any]:
        plane.views.describe(name, brief=True)
        return {"function": name, "points": monitor.series(name, seconds)}

    def schedules_of(shown: Callable[[str], bool]) -> list[dict[str, Any]]:
        if scheduler is None:  # only a document-building app (tests) has none
            raise RuntimeError("this app was made without the daemon's scheduler")
        return scheduler.describe(shown)

    @app.get("/v1/schedules", response_model=list[ScheduleState])
    async def all_schedules(request: Request) -> list[dict[str, Any]]:
        """Every serving schedule ([[schedule]] in hearth.toml), by function; for a
        deploy:NAME token, NAME's alone."""
        return schedules_of(_scope(request).sees)

    @app.get(
        "/v1/functions/{name}/schedules",
        response_model=list[ScheduleState],
        responses=declare(404),
    )
    async def schedules(name: Name) -> list[dict[str, Any]]:
        """The function's serving schedules: next tick, last run, whether one is running."""
        plane.views.describe(name, brief=True)  # 404 for no such function
        return schedules_of(lambda shown: shown == name)

    def data_root(name: str) -> tuple[str, int | None]:
        plane.views.describe(name, brief=True)  # 404 for no such function
        planner = supervisor.planner
        return str(planner.data_folder(name)), planner.uid(supervisor.identity(name))

    @app.get(
        "/v1/functions/{name}/data",
        response_model=DataListing,
        responses={
            200: {
                "description": "A folder's entries (JSON), or a file's bytes.",
                "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            },
            **declare(400, 404, 409, 422),
        },
    )
    async def read_data(name: Name, path: DataPath = "") -> Any:
        """What is in the function's data folder (HEARTH_DATA): a folder's entries or a
        file (up to 64 MiB). Links the function made are listed, never followed."""
        root, _ = data_root(name)  # refusals of `reach` are answered by hearth.api.errors
        entries = await asyncio.to_thread(reach.listing, root, path)
        if entries is not None:
            return {"path": path, "entries": [vars(e) for e in entries]}
        data = await asyncio.to_thread(reach.read, root, path, MAX_DATA_FILE)
        return Response(data, media_type=OCTETS)

    @app.put(
        "/v1/functions/{name}/data",
        response_model=DataWritten,
        responses=declare(400, 404, 409, 413, 415, 422),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            }
        },
    )
    async def write_data(name: Name, request: Request, path: DataFile) -> dict[str, Any]:
        """Put a file in the function's data folder (folders made as needed; owned by the
        function; replaced whole)."""
        root, uid = data_root(name)
        if request.headers.get("content-type", "").split(";")[0].strip() != OCTETS:
            raise HTTPException(415, f"send the file's bytes as {OCTETS}")
        body = await read_body(request, MAX_DATA_FILE, "the file")
        await asyncio.to_thread(reach.write, root, path, body, uid)
        return {"path": path, "bytes": len(body)}

    @app.get(
        "/v1/backup",
        response_class=Response,
        responses={
            200: {
                "description": "A gzipped tar of the state database, the secret key, every "
                "bundle and every function's data, with a manifest of checksums.",
                "content": {"application/gzip": {"schema": {"type": "string"}}},
            }
        },
    )
    async def backup() -> Response:
        """One archive of everything, taken while serving (admin tokens only: it holds
        the key to the secrets). `hearth restore` makes a data directory of it."""
        name = time.strftime(backups.BACKUP_NAME, time.gmtime())
        taken = await plane.backup(plane.config.data_dir / "backups" / name)
        return ArchiveResponse(
            taken.path,
            media_type="application/gzip",
            filename=name,
            background=BackgroundTask(taken.path.unlink, missing_ok=True),
        )

    app.include_router(access_routes(plane, store))
    app.include_router(invocation_routes(plane, invocations))

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        """The dashboard's page; it asks for a token and calls this API with it."""
        return FileResponse(DASHBOARD / "index.html")

    app.mount("/ui", StaticFiles(directory=DASHBOARD), name="ui")
    return app


def is_dashboard(method: str, path: str) -> bool:
    """Whether a request is for the dashboard's static files, served without a token so
    that a browser can show the login page: GET or HEAD of exactly `/`, or of a file under
    `/ui/` named plainly (no empty, `.` or `..` segment, though StaticFiles would refuse
    those too). Anything else, `/ui` itself included, needs a token as before."""
    if method not in ("GET", "HEAD"):
        return False
    if path == "/":
        return True
    if not path.startswith("/ui/"):
        return False
    return all(part not in ("", ".", "..") for part in path[len("/ui/") :].split("/"))


def _scope(request: Request) -> Scope:
    scope = getattr(request.state, "scope", None)
    if not isinstance(scope, Scope):  # fail closed: never answer as if it were admin
        raise RuntimeError("the request has no scope: authentication did not run")
    return scope


def _refusal(scope: Scope, method: str) -> str:
    if scope.kind == "read":
        allows = "reading (GET) functions, versions, events, logs, schedules, keys and secret names"
    else:
        allows = (
            f"function {scope.function!r} only: deploy, rollback, traffic, status, versions, "
            "events, logs, schedules, keys and secrets"
        )
    return (
        f"this token's scope is '{scope}', which does not allow this {method}; it allows "
        f"{allows}. Ask an admin for a token with the scope you need"
    )


def _finish_document(document: dict[str, Any]) -> None:
    """What FastAPI cannot know: every operation outside OPEN_PATHS and BY_CAPABILITY needs
    the bearer token and may be refused to its scope (the middleware enforces both), and
    its default 422 (a shape we never send) is added to operations that cannot give one;
    those that can declare our own."""
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "An API token: the admin token in the daemon's data directory ('token' file), or "
            "one made by POST /v1/tokens with a scope (admin, read, deploy:NAME)."
        ),
    }
    refused = {
        code: {
            "description": errors.DESCRIPTIONS[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in (401, 403)
    }
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if "HTTPValidationError" in json.dumps(responses.get("422")):
                del responses["422"]
            if path not in OPEN_PATHS and (method, path) not in BY_CAPABILITY:
                operation["security"] = [{"bearer": []}]
                responses["401"] = refused[401]
                responses["403"] = refused[403]
    for schema in ("HTTPValidationError", "ValidationError"):
        components.get("schemas", {}).pop(schema, None)
