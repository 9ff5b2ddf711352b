"""The numbers behind the charts: a point per second per function for the last 15 minutes
(a ring in memory), rolled up into a row per minute (kept 7 days by the store), so a
restart does not blank the charts. Pure: the monitor feeds it and stores the rows."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field

from hearth.gateway.meter import quantile

RING = 900  # seconds of 1 s points kept in memory


@dataclass(frozen=True)
class Point:
    """One interval (a second, or a minute when rolled up) of one function."""

    t: int  # unix time at the start of the interval
    seconds: int  # its length
    requests: int
    errors: int  # answers with a 5xx status
    p50: float  # request duration in seconds, as the gateway saw it (queue wait included)
    p99: float
    instances: int  # ready instances (the most seen, for a minute)
    in_flight: int
    queued: int
    memory: int  # resident bytes of its instances (the most seen, for a minute)

    def shown(self) -> dict[str, float]:
        """The point as the API shows it: rates per second, milliseconds."""
        per = max(1, self.seconds)
        return {
            "t": self.t,
            "seconds": self.seconds,
            "rps": round(self.requests / per, 3),
            "errors_per_s": round(self.errors / per, 3),
            "p50_ms": round(self.p50 * 1000, 3),
            "p99_ms": round(self.p99 * 1000, 3),
            "instances": self.instances,
            "in_flight": self.in_flight,
            "queued": self.queued,
            "memory_bytes": self.memory,
        }

    def row(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class _Minute:
    start: int
    requests: int = 0
    errors: int = 0
    buckets: list[int] = field(default_factory=list)
    instances: int = 0
    in_flight: int = 0
    queued: int = 0
    memory: int = 0

    def add(self, point: Point, buckets: list[int]) -> None:
        self.requests += point.requests
        self.errors += point.errors
        if not self.buckets:
            self.buckets = [0] * len(buckets)
        for i, count in enumerate(buckets):
            self.buckets[i] += count
        self.instances = max(self.instances, point.instances)
        self.in_flight = max(self.in_flight, point.in_flight)
        self.queued = max(self.queued, point.queued)
        self.memory = max(self.memory, point.memory)

    def point(self) -> Point:
        return Point(
            self.start,
            60,
            self.requests,
            self.errors,
            quantile(self.buckets, 0.5),
            quantile(self.buckets, 0.99),
            self.instances,
            self.in_flight,
            self.queued,
            self.memory,
        )


class History:
    def __init__(self, seconds: int = RING) -> None:
        self.seconds = seconds
        self.rings: dict[str, deque[Point]] = {}
        self._minutes: dict[str, _Minute] = {}

    def add(self, function: str, point: Point, buckets: list[int]) -> Point | None:
        """Keep a second's point; the function's last minute, rolled up, once it is over."""
        ring = self.rings.get(function)
        if ring is None:
            ring = self.rings[function] = deque(maxlen=self.seconds)
        ring.append(point)
        start = point.t - point.t % 60
        minute = self._minutes.get(function)
        done = None
        if minute is not None and minute.start != start:
            done = minute.point()
            minute = None
        if minute is None:
            minute = self._minutes[function] = _Minute(start)
        minute.add(point, buckets)
        return done

    def unfinished(self) -> list[tuple[str, Point]]:
        """The minutes in progress, rolled up as far as they go (kept at shutdown)."""
        return [(function, minute.point()) for function, minute in self._minutes.items()]

    def points(self, function: str, since: float) -> list[Point]:
        return [p for p in self.rings.get(function, ()) if p.t >= since]

    def forget(self, function: str) -> None:
        self.rings.pop(function, None)
        self._minutes.pop(function, None)
