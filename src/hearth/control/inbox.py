"""What the data plane tells the control plane: events, posted and never waited on.

The gateway and the supervisor call `Inbox.post` from wherever they notice something (a
request queued, an instance that broke its framing, an exit, a limit hit); `post` only
appends to a queue, so no I/O and no decision happens in the middle of an exchange. The
reconciler reads the queue, one event at a time. Demand and ticks are coalesced: a burst
of queued requests for one pool is one event until the reconciler has looked.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from hearth.supervisor import Instance


@dataclass(frozen=True)
class Demand:
    """Requests are queued for a version: scale now rather than at the next tick."""

    function: str
    version: int


@dataclass(frozen=True)
class Recycle:
    """The gateway found an instance broken (a timeout, bad framing): replace it."""

    function: str
    version: int
    instance_id: str
    reason: str


@dataclass(frozen=True)
class Exited:
    instance: Instance


@dataclass(frozen=True)
class LimitHit:
    function: str
    message: str


@dataclass(frozen=True)
class Tick:
    """Once a second: health checks, idle reclaim, retries."""


Event = Demand | Recycle | Exited | LimitHit | Tick


class Inbox:
    def __init__(self) -> None:
        self._events: deque[Event] = deque()
        self._pending: set[tuple[str, int]] = set()  # coalesced events not yet taken
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._events)

    def post(self, event: Event) -> None:
        if isinstance(event, Demand | Tick):
            key = (event.function, event.version) if isinstance(event, Demand) else ("", 0)
            if key in self._pending:
                return
            self._pending.add(key)
        self._events.append(event)
        self._wake.set()

    def take(self) -> Event | None:
        """The next event, or None when there is none."""
        if not self._events:
            self._wake.clear()
            return None
        event = self._events.popleft()
        if isinstance(event, Demand):
            self._pending.discard((event.function, event.version))
        elif isinstance(event, Tick):
            self._pending.discard(("", 0))
        return event

    async def get(self) -> Event:
        while True:
            event = self.take()
            if event is not None:
                return event
            await self._wake.wait()
