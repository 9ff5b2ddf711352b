"""The KV servers of one daemon: one per function whose serving version asks for it
(`[kv] enabled = true`), started before its instances, started again when it dies (with
a growing delay while it keeps dying), stopped when no serving version asks for it or the
function is removed. Its files stay until `hearth rm --purge`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hearth.kv.server import KvError, Server, Settings
from hearth.sandbox.plan import Planner
from hearth.supervisor import LogBook

log = logging.getLogger("hearth")
SOCKET = "kv.sock"
MISSING = (
    "[kv] enabled = true needs redis-server, which this host does not have: install it "
    "(Debian/Ubuntu: apt-get install redis-server) and deploy again"
)
STEADY = 60.0  # a server up this long has stopped crashing: its next restart is at once


def find_server(environ: dict[str, str]) -> str | None:
    """The redis-server program: the one HEARTH_REDIS_SERVER names, else the one on PATH."""
    named = environ.get("HEARTH_REDIS_SERVER")
    if named:
        return named if os.access(named, os.X_OK) else None
    return shutil.which("redis-server")


class Keeper:
    def __init__(
        self,
        planner: Planner,
        identity: Callable[[str], int],
        logs: LogBook,
        binary: str | None,
        on_event: Callable[[str, str, str], None] = lambda function, kind, message: None,
    ) -> None:
        self.planner = planner
        self.identity = identity
        self.logs = logs
        self.binary = binary  # None: this host has no redis-server (KV is refused)
        self.on_event = on_event
        self.servers: dict[str, Server] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"<Keeper [{len(self.servers)} servers]>"

    @property
    def available(self) -> bool:
        return self.binary is not None

    def socket(self, function: str) -> Path:
        return self.planner.run_dir / function / SOCKET

    def url(self, function: str) -> str:
        """What the function finds in REDIS_URL (redis-py, and most clients, read it)."""
        return f"unix://{self.socket(function)}"

    async def ensure(self, function: str, memory: int) -> None:
        """The function's server running, with this memory cap; KvError if it cannot be."""
        if self.binary is None:
            raise KvError(MISSING)
        async with self._locks.setdefault(function, asyncio.Lock()):
            server = self.servers.get(function)
            if server is not None and server.alive:
                if server.settings.memory != memory:
                    await server.set_memory(memory)
                return
            await self._start(function, memory)

    async def _start(self, function: str, memory: int) -> None:
        server = await self._launch(function, memory)
        self.servers[function] = server
        self._watchers[function] = asyncio.ensure_future(self._watch(function, server))

    async def _launch(self, function: str, memory: int) -> Server:
        assert self.binary is not None
        policy, folder = self.planner.kv_policy(function, self.identity(function))
        settings = Settings(self.binary, self.socket(function), folder, memory)
        server = Server(function, settings, policy)
        await server.start(on_line=lambda line: self.logs.write(function, "kv", line))
        log.info("KV server of %s started (pid %s)", function, server.pid)
        return server

    async def _watch(self, function: str, server: Server) -> None:
        """Start the server again when it dies (not when it was stopped)."""
        failures = 0
        while True:
            began = time.monotonic()
            code = await server.wait()
            if self.servers.get(function) is not server:
                return  # stopped on purpose
            failures = 0 if time.monotonic() - began > STEADY else failures + 1
            self.on_event(function, "kv-exited", f"the KV server exited (code {code}); restarting")
            while True:
                await asyncio.sleep(min(30.0, 0.25 * 2**failures) if failures else 0.0)
                if self.servers.get(function) is not server:
                    return
                try:
                    async with self._locks.setdefault(function, asyncio.Lock()):
                        fresh = await self._launch(function, server.settings.memory)
                        self.servers[function] = server = fresh
                    break
                except (KvError, OSError) as exc:
                    failures += 1
                    self.on_event(function, "kv-failed", str(exc))

    async def stop(self, function: str) -> None:
        """Stop the function's server (its files stay)."""
        server = self.servers.pop(function, None)
        watcher = self._watchers.pop(function, None)
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if server is not None:
            await server.stop()

    async def close(self) -> None:
        await asyncio.gather(*(self.stop(function) for function in list(self.servers)))

    def describe(self, function: str) -> dict[str, Any] | None:
        """What `hearth status` shows of the function's server (None: it has none)."""
        server = self.servers.get(function)
        if server is None:
            return None
        return {
            "running": server.alive,
            "pid": server.pid,
            "memory_limit": server.settings.memory,
            "url": self.url(function),
        }

    def snapshot(self, function: str) -> Path | None:
        """A consistent snapshot of the function's store, if its server runs (else None:
        its files are not being written). Blocking: call from a thread."""
        server = self.servers.get(function)
        if server is None or not server.alive:
            return None
        return server.snapshot()
