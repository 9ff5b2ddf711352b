"""An instance's life: apply its settings, load the app, run startup, serve, drain, exit.

Runs in a process just forked from a zygote. It reports on its status pipe, one JSON
line: {"ready": pid} once lifespan startup has finished and the socket listens, or
{"error": "..."} when loading or startup failed. Exit codes follow gunicorn's idea:
APP_LOAD_ERROR and STARTUP_FAILURE let the supervisor tell a broken version from a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import traceback
from typing import Any, NoReturn

import uvicorn

from hearth.runtime.forwarded import ForwardedMiddleware
from hearth.runtime.loader import load

APP_LOAD_ERROR = 4
STARTUP_FAILURE = 3
HEARTBEAT = 1.0  # seconds between heartbeats on the status pipe, unless the spec says


class StartupWatch:
    """Wraps the app to keep the message of a failed lifespan startup."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.failure: str | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def watch(message: Any) -> None:
            if message["type"] == "lifespan.startup.failed":
                self.failure = message.get("message") or "lifespan startup failed"
            await send(message)

        await self.app(scope, receive, watch)


class InstanceServer(uvicorn.Server):
    def __init__(
        self, config: uvicorn.Config, status: Any, lifeline: int, heartbeat: float = HEARTBEAT
    ) -> None:
        super().__init__(config)
        self.status = status
        self.lifeline = lifeline
        self.heartbeat = heartbeat

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit:
            return
        # The daemon holds the only write end of the lifeline; EOF means it is gone.
        asyncio.get_running_loop().add_reader(self.lifeline, self._lifeline_lost)
        _report(self.status, {"ready": os.getpid()})
        self._beat()

    def _beat(self) -> None:
        """A heartbeat from the event loop itself: a blocked loop stops beating."""
        if self.should_exit:
            return
        with contextlib.suppress(OSError):
            self.status.write("\n")
        asyncio.get_running_loop().call_later(self.heartbeat, self._beat)

    def _lifeline_lost(self) -> None:
        asyncio.get_running_loop().remove_reader(self.lifeline)
        self.should_exit = True


def run(spec: dict[str, Any], status_fd: int, lifeline: int) -> NoReturn:
    """Serve one instance until told to stop; never returns."""
    status = os.fdopen(status_fd, "w", buffering=1, closefd=True)
    try:
        os.chdir(spec["code_dir"])
        sys.path.insert(0, spec["code_dir"])
        os.environ.update(spec["env"])
        app, _kind = load(spec.get("entrypoint"), spec["concurrency"])
    except BaseException:
        text = traceback.format_exc()
        sys.stderr.write(text)
        _report(status, {"error": text})
        _exit(APP_LOAD_ERROR)
    watch = StartupWatch(ForwardedMiddleware(app))
    config = uvicorn.Config(
        watch,
        uds=spec["socket"],
        loop="uvloop",
        http="httptools",
        lifespan="auto",
        interface="asgi3",
        log_level="warning",
        log_config=None,  # no dictConfig per instance: warnings reach stderr (the logs) as is
        access_log=False,
        proxy_headers=False,
        server_header=False,
        # The gateway owns connection reuse; the instance must never close an idle one first.
        timeout_keep_alive=24 * 3600,
        timeout_graceful_shutdown=spec["drain"] or None,
    )
    server = InstanceServer(config, status, lifeline, spec.get("heartbeat", HEARTBEAT))
    try:
        server.run()
    except SystemExit as exc:
        if exc.code == STARTUP_FAILURE or watch.failure:
            _report(status, {"error": watch.failure or "lifespan startup failed"})
            _exit(STARTUP_FAILURE)
        _exit(exc.code if isinstance(exc.code, int) else 1)
    except BaseException:
        text = traceback.format_exc()
        sys.stderr.write(text)
        _report(status, {"error": text})
        _exit(1)
    if not server.started:
        _report(status, {"error": watch.failure or "the server did not start"})
        _exit(STARTUP_FAILURE)
    _exit(0)


def _report(status: Any, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # the daemon is gone; the lifeline will end us
        status.write(json.dumps(message) + "\n")


def _exit(code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
