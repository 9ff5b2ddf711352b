"""Adapt a plain `handle(request)` function (with optional setup/teardown) to ASGI.

Usable without the rest of Hearth, e.g. under plain uvicorn:
    uvicorn --app-dir examples/hello --factory hearth.runtime.handler:make_app
"""

from __future__ import annotations

import importlib
import inspect
import traceback
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send


class HandlerApp:
    """ASGI app calling `handle(request)`; `setup()`/`teardown()` run in the lifespan."""

    def __init__(
        self,
        handle: Callable[[Request], Any],
        setup: Callable[[], Any] | None = None,
        teardown: Callable[[], Any] | None = None,
    ) -> None:
        self.handle = handle
        self.setup = setup
        self.teardown = teardown
        self._async = inspect.iscoroutinefunction(handle)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "websocket":  # refused before it opens: the client sees 403
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            raise RuntimeError(f"handle(request) functions serve HTTP only, not {scope['type']}")
        request = Request(scope, receive)
        if self._async:
            result = await self.handle(request)
        else:
            result = await run_in_threadpool(self.handle, request)
        await to_response(result)(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                hook, ok = self.setup, "lifespan.startup.complete"
                failed = "lifespan.startup.failed"
            else:
                hook, ok = self.teardown, "lifespan.shutdown.complete"
                failed = "lifespan.shutdown.failed"
            try:
                await _call(hook)
            except Exception:
                await send({"type": failed, "message": traceback.format_exc()})
            else:
                await send({"type": ok})
            if message["type"] == "lifespan.shutdown":
                return


async def _call(hook: Callable[[], Any] | None) -> None:
    if hook is None:
        return
    result = hook()
    if inspect.isawaitable(result):
        await result


def to_response(result: Any) -> Response:
    """str -> text, bytes -> octet-stream, dict/list -> JSON, None -> 204, Response as is."""
    if isinstance(result, Response):
        return result
    if isinstance(result, str):
        return PlainTextResponse(result)
    if isinstance(result, bytes | bytearray | memoryview):
        return Response(bytes(result), media_type="application/octet-stream")
    if isinstance(result, dict | list):
        return JSONResponse(result)
    if result is None:
        return Response(status_code=204)
    raise TypeError(
        f"handle() returned {type(result).__name__}; return str, bytes, dict, list, None "
        "or a starlette Response"
    )


def from_module(module: Any, attr: str = "handle") -> HandlerApp:
    return HandlerApp(
        getattr(module, attr), getattr(module, "setup", None), getattr(module, "teardown", None)
    )


def make_app(module: str = "main") -> HandlerApp:
    """Factory for plain uvicorn: `uvicorn --factory hearth.runtime.handler:make_app`."""
    return from_module(importlib.import_module(module))
