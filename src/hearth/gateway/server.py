"""The gateway object: the route table and the listening server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from hearth.gateway.proxy import ClientProtocol
from hearth.gateway.routes import Backend, Route, RouteLimits


class Gateway:
    """Routes requests to backends. The supervisor adds, drains and removes backends."""

    def __init__(self, domain: str = "localhost") -> None:
        self.domain = domain.encode()
        self.routes: dict[str, Route] = {}
        self.connections: set[ClientProtocol] = set()
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<Gateway [{len(self.routes)} routes | {len(self.connections)} connections]>"

    async def listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: ClientProtocol(self), host, port, reuse_address=True, backlog=1024
        )

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            if connection.transport is not None and not connection.line:
                connection.transport.close()

    def background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def set_route(
        self, name: str, limits: RouteLimits, on_demand: Callable[[Route], None] | None = None
    ) -> Route:
        route = self.routes.get(name)
        if route is None:
            route = self.routes[name] = Route(name, limits, on_demand)
        else:
            route.limits = limits
            route.on_demand = on_demand
        return route

    def remove_route(self, name: str) -> None:
        route = self.routes.pop(name, None)
        if route is None:
            return
        for exchange in list(route.waiters):
            exchange.fail(404, f"function {name!r} was removed")
        route.waiters.clear()

    def add_backend(self, name: str, backend: Backend) -> None:
        self.routes[name].add(backend)

    async def drain(self, name: str, backend: Backend, timeout: float) -> bool:
        """Stop routing to `backend` and wait for its in-flight requests to finish."""
        route = self.routes.get(name)
        if route is not None:
            route.withdraw(backend)
        backend.routable = False
        done = await backend.wait_idle(timeout)
        backend.close_idle()
        return done

    def remove_backend(self, name: str, backend: Backend) -> None:
        """The instance is gone: forget it at once (its in-flight requests get 502)."""
        route = self.routes.get(name)
        if route is not None:
            route.withdraw(backend)
        backend.routable = False
        backend.close_idle()
