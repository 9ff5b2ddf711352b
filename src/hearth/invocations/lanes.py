"""The worker's connections to the daemon's own gateway: an httpx client per attempt under
way, each keeping one keep-alive connection, taken from a stack of idle ones and given
back.

Why not one client with a large pool: httpcore's pool looks at every connection it holds
(and, for each idle one, at all of them again) whenever a request starts or ends, which
at the hundred-odd attempts a worker keeps going held the event loop for most of each
attempt (measured: 130 replays a second). A client per lane makes that look cost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator

import httpx

KEEP = 256  # idle lanes kept for the next attempts; more are closed as they come back
ONE = httpx.Limits(max_connections=1, max_keepalive_connections=1)


class Lanes:
    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        # Never used (the gateway is plain HTTP), but shared: a client that made its own
        # would spend tens of milliseconds loading certificates.
        self._context = ssl.create_default_context()
        self._idle: list[httpx.AsyncClient] = []
        self._busy: set[httpx.AsyncClient] = set()
        self._closing: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<Lanes [{len(self._busy)} busy | {len(self._idle)} idle]>"

    @contextlib.asynccontextmanager
    async def lane(self) -> AsyncIterator[httpx.AsyncClient]:
        """A client of its own for one attempt."""
        client = self._idle.pop() if self._idle else self._new()
        self._busy.add(client)
        try:
            yield client
        finally:
            self._busy.discard(client)
            if len(self._idle) < self.keep and not client.is_closed:
                self._idle.append(client)
            else:
                task = asyncio.ensure_future(client.aclose())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        clients = [*self._idle, *self._busy]
        self._idle.clear()
        self._busy.clear()
        await asyncio.gather(*(c.aclose() for c in clients), *self._closing, return_exceptions=True)

    def _new(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=None, trust_env=False, limits=ONE, verify=self._context)
