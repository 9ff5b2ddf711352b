"""The control API. Every error is JSON: {"error": "<what went wrong and what to do>"}."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel
from starlette.responses import Response

import hearth
from hearth.daemon.functions import DeployError, Functions, NotFound
from hearth.store import Store

OPEN_PATHS = frozenset({"/v1/health", "/docs", "/openapi.json"})


class TrafficBody(BaseModel):
    weights: dict[int, int]


class RollbackBody(BaseModel):
    to: int | None = None


def create_app(functions: Functions, store: Store) -> FastAPI:
    app = FastAPI(title="Hearth control API", version=hearth.__version__)

    @app.middleware("http")
    async def authenticate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path not in OPEN_PATHS:
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token or not store.token_valid(token):
                return JSONResponse(
                    {
                        "error": "missing or invalid token: send 'Authorization: Bearer <token>' "
                        "(the admin token is in the data directory's 'token' file)"
                    },
                    status_code=401,
                )
        return await call_next(request)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(DeployError)
    async def refused(request: Request, exc: DeployError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=409)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        name = exc.args[0]
        return JSONResponse(
            {"error": f"no function named {name!r}", "function": name}, status_code=404
        )

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, "version": hearth.__version__}

    @app.get("/v1/info")
    async def info() -> dict[str, Any]:
        config = functions.config  # read late: ports chosen by the OS are known after start
        return {
            "version": hearth.__version__,
            "gateway": config.gateway_url,
            "api": config.api_url,
            "domain": config.domain,
            "data_dir": str(config.data_dir),
            "zygotes": [
                {"env": key, "pid": zygote.pid}
                for key, zygote in functions.supervisor.zygotes.items()
                if zygote.alive
            ],
        }

    @app.get("/v1/functions")
    async def list_functions() -> list[dict[str, Any]]:
        return functions.overview()

    @app.get("/v1/functions/{name}")
    async def describe(name: str) -> dict[str, Any]:
        return functions.describe(name)

    @app.get("/v1/functions/{name}/versions")
    async def versions(name: str) -> list[dict[str, Any]]:
        return functions.versions(name)

    @app.post("/v1/functions/{name}/traffic")
    async def traffic(name: str, body: TrafficBody) -> dict[str, Any]:
        """Split traffic between versions, e.g. {"weights": {"3": 90, "4": 10}}."""
        return await functions.set_traffic(name, body.weights)

    @app.post("/v1/functions/{name}/rollback")
    async def rollback(name: str, body: RollbackBody) -> dict[str, Any]:
        """Back to version `to`, or to the newest good version before the serving one."""
        return await functions.rollback(name, body.to)

    @app.get("/v1/functions/{name}/events", response_model=None)
    async def events(
        name: str, limit: int = 100, follow: bool = False
    ) -> list[dict[str, Any]] | StreamingResponse:
        functions.describe(name, brief=True)
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

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    @app.post("/v1/functions/{name}/versions")
    async def deploy(name: str, request: Request) -> StreamingResponse:
        """Upload a bundle (tar.gz). The answer streams progress as JSON lines; the last line
        is {"result": {...}} or {"error": "..."}."""
        limit = functions.config.max_bundle
        declared = int(request.headers.get("content-length") or 0)
        if declared > limit:
            raise HTTPException(413, f"the bundle is {declared} bytes, over the limit of {limit}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise HTTPException(413, f"the bundle is over the limit of {limit} bytes")
        return StreamingResponse(
            _deploy_stream(functions, name, bytes(body)), media_type="application/x-ndjson"
        )

    @app.delete("/v1/functions/{name}")
    async def remove(name: str) -> dict[str, Any]:
        await functions.remove(name)
        return {"removed": name}

    @app.get("/v1/functions/{name}/logs")
    async def logs(name: str, tail: int = 100, follow: bool = False) -> Response:
        functions.describe(name, brief=True)
        book = functions.logs
        if not follow:
            return PlainTextResponse("".join(book.tail(name, tail)))
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

    return app


async def _deploy_stream(functions: Functions, name: str, data: bytes) -> AsyncIterator[str]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def run() -> None:
        try:
            result = await functions.deploy(
                name, data, lambda line: queue.put_nowait({"log": line})
            )
        except DeployError as exc:
            queue.put_nowait({"error": str(exc)})
        else:
            queue.put_nowait({"result": result})

    # The deploy goes on even if the client disconnects: a half-finished deploy is worse.
    functions.background(run())
    while True:
        message = await queue.get()
        yield json.dumps(message) + "\n"
        if "log" not in message:
            return


def new_token() -> str:
    return secrets.token_urlsafe(32)
