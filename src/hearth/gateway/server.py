"""The gateway object: the route table and the listening server."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter, deque
from collections.abc import Coroutine
from typing import Any

from hearth.gateway.config import GatewayConfig
from hearth.gateway.deferred import Defer
from hearth.gateway.proxy import ClientProtocol
from hearth.gateway.routes import Backend, Pool, Route
from hearth.gateway.tunnel import GOING_AWAY

SWEEP = 1.0  # seconds between passes over the connections' deadlines


class Gateway:
    """Routes requests to backends. The supervisor adds, drains and removes backends."""

    def __init__(self, domain: str = "localhost", config: GatewayConfig | None = None) -> None:
        self.domain = domain.lower().encode()
        self.config = config or GatewayConfig()
        self.routes: dict[str, Route] = {}
        self.connections: set[ClientProtocol] = set()
        self.per_client: Counter[bytes] = Counter()  # open connections by client address
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Finished requests (hearth.gateway.meter.Finished, as plain tuples), taken by the
        # monitor once a second; beyond MAX_RECORDS waiting, counted in `dropped` instead.
        self.records: list[tuple[Any, ...]] = []
        self.dropped = 0
        self.unrouted = 0  # requests for no function (404 before any route)
        self.sampled = False  # the traceparent flag of traces started here: spans exported
        self.metering = True  # count finished requests in their version's meter
        self.keeping = True  # keep finished requests (the access log, spans)
        # The daemon's own requests (schedules, async invocations) carry this in
        # `x-hearth-internal`: past a function's keys and rate limit. Never leaves the daemon.
        self.internal = secrets.token_urlsafe(32).encode()
        # Stores an asynchronous invocation (X-Hearth-Async: 1); None: refused with 501.
        self.defer: Defer | None = None

    def take_records(self) -> list[tuple[Any, ...]]:
        records, self.records = self.records, []
        return records

    def __repr__(self) -> str:
        return f"<Gateway [{len(self.routes)} routes | {len(self.connections)} connections]>"

    async def listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: ClientProtocol(self), host, port, reuse_address=True, backlog=1024
        )
        self.background(self._sweep_forever())

    def sweep(self, now: float | None = None) -> None:
        """End connections past a deadline (one pass; the request path only stamps times)."""
        if now is None:
            now = asyncio.get_running_loop().time()
        for connection in list(self.connections):
            connection.check_deadlines(now)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP)
            self.sweep()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            if connection.transport is not None and not connection.line:
                connection.transport.close()

    def background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def set_pools(self, name: str, pools: list[Pool]) -> Route:
        """Make `pools` the serving versions of `name`, at once.

        Requests queued in a pool that leaves are handed to the new pools, so a switch of
        version never fails a request that was waiting.
        """
        route = self.routes.get(name)
        if route is None:
            route = self.routes[name] = Route(name, pools)
            return route
        leaving = [p for p in route.pools if p not in pools]
        route.pools = pools
        for pool in leaving:
            pool.retired = True
            waiters, pool.waiters = pool.waiters, deque()
            for exchange in waiters:
                exchange.requeue(route.choose())
        return route

    def remove_route(self, name: str) -> None:
        route = self.routes.pop(name, None)
        if route is None:
            return
        for pool in route.pools:
            pool.retired = True
            for exchange in list(pool.waiters):
                exchange.fail(404, f"function {name!r} was removed")
            pool.waiters.clear()

    async def drain(self, pool: Pool, backend: Backend, timeout: float) -> bool:
        """Stop routing to `backend` and wait for its in-flight requests to finish."""
        pool.withdraw(backend)
        done = await backend.wait_idle(timeout)
        for tunnel in list(backend.tunnels):  # WebSockets still open at the deadline
            tunnel.close(GOING_AWAY)
        backend.close_idle()
        return done

    def remove_backend(self, pool: Pool, backend: Backend) -> None:
        """The instance is gone: forget it at once (its in-flight requests get 502)."""
        pool.withdraw(backend)
        backend.close_idle()
