"""The route table's parts: functions (routes), their instances (backends), the choice.

`pick` is the pure decision; `Route` and `Backend` hold the counters it reads. They know
nothing about processes: the supervisor adds and drains backends through the Gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hearth.gateway.access import Access
from hearth.gateway.meter import Meter

if TYPE_CHECKING:
    from hearth.gateway.proxy import Exchange
    from hearth.gateway.tunnel import Tunnel
    from hearth.gateway.upstream import Upstream


@dataclass(frozen=True)
class RouteLimits:
    timeout: float = 30.0
    body: int = 10 * 1000**2
    queue: int = 256
    websockets: int = 1000  # open WebSockets per version (503 past it)
    websocket_idle: float = 300.0  # seconds without a byte either way: closed (1001)


class Backend:
    """One instance as the gateway sees it: a socket, a concurrency limit, pooled connections."""

    __slots__ = (
        "_drained",
        "concurrency",
        "id",
        "idle",
        "idle_since",
        "in_flight",
        "path",
        "pool",
        "requests",
        "routable",
        "tunnels",
    )

    def __init__(self, id: str, path: str, concurrency: int) -> None:
        self.id = id
        self.path = path
        self.concurrency = concurrency
        self.in_flight = 0
        self.requests = 0
        self.idle: list[Upstream] = []
        self.routable = False
        self.pool: Pool | None = None  # set when a pool routes to it
        self.idle_since = time.monotonic()
        self._drained: asyncio.Event | None = None
        self.tunnels: set[Tunnel] = set()  # its open WebSockets (each also in flight)

    def __repr__(self) -> str:
        state = "routable" if self.routable else "not routable"
        return (
            f"<Backend {self.id} [{state} | in-flight {self.in_flight}/{self.concurrency}, "
            f"{len(self.idle)} idle connections]>"
        )

    def acquire(self) -> None:
        self.in_flight += 1
        self.requests += 1

    def release(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle_since = time.monotonic()
            if self._drained is not None:
                self._drained.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if the deadline came first."""
        if self.in_flight == 0:
            return True
        self._drained = asyncio.Event()
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close_idle(self) -> None:
        idle, self.idle = self.idle, []
        for upstream in idle:
            upstream.close()


def pick(backends: Sequence[Backend]) -> Backend | None:
    """The routable backend with the fewest requests in flight and a free slot."""
    best: Backend | None = None
    for backend in backends:
        if backend.in_flight < backend.concurrency and (
            best is None or backend.in_flight < best.in_flight
        ):
            best = backend
    return best


class Pool:
    """One version of a function: its routable backends, its limits and its queue."""

    def __init__(
        self,
        name: str,
        version: int,
        limits: RouteLimits,
        weight: int = 100,
        on_demand: Callable[[Pool], None] | None = None,
        on_recycle: Callable[[Pool, Backend, str], None] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.limits = limits
        self.weight = weight
        self.on_demand = on_demand
        self.on_recycle = on_recycle  # an instance to replace, and why
        self.retired = False  # no longer in its route: requests that chose it choose again
        self.backends: list[Backend] = []
        self.waiters: deque[Exchange] = deque()
        self.meter = Meter()
        self.tunnels = 0  # open WebSockets

    def __repr__(self) -> str:
        return (
            f"<Pool {self.name}@{self.version} [weight {self.weight} | "
            f"{len(self.backends)} backends | {len(self.waiters)} queued]>"
        )

    def add(self, backend: Backend) -> None:
        backend.routable = True
        backend.pool = self
        self.backends.append(backend)
        self.dispatch()

    def withdraw(self, backend: Backend) -> None:
        backend.routable = False
        if backend in self.backends:
            self.backends.remove(backend)

    def dispatch(self) -> None:
        """Give freed slots to queued exchanges, oldest first."""
        while self.waiters:
            backend = pick(self.backends)
            if backend is None:
                return
            self.waiters.popleft().attach(backend)

    def enqueue(self, exchange: Exchange, force: bool = False) -> bool:
        if len(self.waiters) >= self.limits.queue and not force:
            return False
        self.waiters.append(exchange)
        if self.on_demand is not None:
            self.on_demand(self)
        return True

    def dequeue(self, exchange: Exchange) -> None:
        with contextlib.suppress(ValueError):  # already dispatched
            self.waiters.remove(exchange)


class Route:
    """A function in the route table: one pool per serving version, chosen by weight, and
    who may call it (`access`: public with no rate until the daemon says otherwise)."""

    def __init__(self, name: str, pools: list[Pool]) -> None:
        self.name = name
        self.prefix = f"/fn/{name}".encode()
        self.pools = pools
        self.access = Access(name)

    def __repr__(self) -> str:
        return f"<Route {self.name} {self.pools}>"

    def choose(self) -> Pool:
        pools = self.pools
        if len(pools) == 1:
            return pools[0]
        return choose(pools, random.random())


def choose(pools: list[Pool], draw: float) -> Pool:
    """The pool a draw in [0, 1) falls on, each pool owning a share equal to its weight."""
    total = sum(p.weight for p in pools)
    point = draw * total
    for pool in pools:
        point -= pool.weight
        if point < 0:
            return pool
    return pools[-1]


def route_name(host: bytes | None, path: bytes, domain: bytes) -> tuple[str | None, bool]:
    """The function a request is for, and whether it came by path (/fn/<name>/...)."""
    if host:
        hostname = (host.rsplit(b":", 1)[0] if not host.endswith(b"]") else host).lower()
        suffix = b"." + domain  # `domain` is lowercase
        if hostname.endswith(suffix) and len(hostname) > len(suffix):
            return hostname[: -len(suffix)].decode("latin-1"), False
    if path.startswith(b"/fn/"):
        end = path.find(b"/", 4)
        name = path[4:] if end < 0 else path[4:end]
        name = name.split(b"?", 1)[0]
        if name:
            return name.decode("latin-1"), True
    return None, False
