"""The monitor: once a second it writes the access log, turns the gateway's meters into
history points (and each finished minute into a row in the store), and hands finished
requests to the span exporter when there is one. Nothing here runs on the request path:
the gateway only counts (`hearth.gateway.meter`) and keeps finished requests aside."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hearth.gateway import Gateway, Pool
from hearth.gateway.meter import BUCKETS, Finished, quantile
from hearth.metrics.access import AccessLog
from hearth.metrics.exposition import Snapshot, render
from hearth.metrics.history import History, Point
from hearth.metrics.tally import Tally
from hearth.supervisor import Instance

log = logging.getLogger("hearth.metrics")
# Finished requests go to the access log's writer this often: small batches keep its work
# (formatting lines, on another core when there is one) as smooth as the traffic.
FLUSH = 0.1
WINDOW = 5  # seconds behind the rates `hearth top` shows
PRUNE_EVERY = 3600  # seconds between two removals of rolled-up rows past their week
KEEP = 7 * 24 * 3600


class Rollups(Protocol):
    def add_rollup(self, function: str, point: dict[str, Any]) -> None: ...
    def prune_rollups(self, before: float) -> None: ...
    def rollups(self, function: str, since: float) -> list[dict[str, Any]]: ...


class Spans(Protocol):
    def export(self, records: list[Finished]) -> None: ...


@dataclass
class Track:
    """One version's meter as last seen, and its last WINDOW + 1 looks (for rates)."""

    pool: Pool
    requests: int = 0
    errors: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    looks: deque[tuple[float, int, int, list[int]]] = field(
        default_factory=lambda: deque(maxlen=WINDOW + 1)
    )

    def look(self, now: float) -> tuple[int, int, list[int]]:
        """What happened since the last look: requests, 5xx answers, durations."""
        meter = self.pool.meter
        requests, errors, buckets = meter.requests, meter.codes[5], list(meter.duration)
        delta = (
            requests - self.requests,
            errors - self.errors,
            [b - a for a, b in zip(self.buckets, buckets, strict=True)],
        )
        self.requests, self.errors, self.buckets = requests, errors, buckets
        self.looks.append((now, requests, errors, buckets))
        return delta


class Monitor:
    def __init__(
        self,
        gateway: Gateway,
        instances: Callable[[], Iterable[Instance]],
        store: Rollups,
        access: AccessLog,
        tally: Tally,
        spans: Spans | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tally = tally
        self.gateway = gateway
        self.instances = instances
        self.store = store
        self.access = access
        self.spans = spans
        self.clock = clock
        self.history = History()
        self.started = clock()
        # By the pool itself (held here, so no new pool can take a freed one's id).
        self.tracks: dict[Pool, Track] = {}
        self._pruned = 0.0
        self._sampled = -1  # the second of the last history point

    async def tick(self) -> None:
        """The finished requests to the access log and the exporter; the meters into
        history once a second."""
        records = self.gateway.take_records()
        if records:
            await self.access.write(records)
            if self.spans is not None:
                self.spans.export([Finished._make(r) for r in records])
        now = self.clock()
        if int(now) != self._sampled:
            self._sampled = int(now)
            self.sample(now)

    async def scrape(self) -> bytes:
        """The Prometheus exposition: counters copied here, rendered in a thread."""
        snapshot = Snapshot(self.gateway, self.tally, list(self.instances()))
        return await asyncio.to_thread(render, snapshot)

    async def run(self, interval: float = FLUSH) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except Exception:  # a full disk, say: the next tick tries again
                log.exception("monitoring tick failed")

    async def close(self) -> None:
        """The last requests' access lines and spans, the minute in progress; then the
        access log's writer ends, once it has written all."""
        await self.tick()
        self.sample(self.clock())  # what this second counted so far
        for function, minute in self.history.unfinished():
            self.store.add_rollup(function, minute.row())
        await self.access.close()

    # history

    def sample(self, now: float) -> None:
        memory = self.memory()
        seen: set[Pool] = set()
        second = int(now)
        for name, route in self.gateway.routes.items():
            requests = errors = in_flight = queued = ready = 0
            buckets = [0] * (len(BUCKETS) + 1)
            for pool in route.pools:
                seen.add(pool)
                track = self.tracks.get(pool)
                if track is None:  # a new version: it counted from zero since the last tick
                    track = self.tracks[pool] = Track(pool)
                    track.looks.append((now - 1.0, 0, 0, list(track.buckets)))
                r, e, b = track.look(now)
                requests += r
                errors += e
                for i, count in enumerate(b):
                    buckets[i] += count
                ready += len(pool.backends)
                in_flight += sum(backend.in_flight for backend in pool.backends)
                queued += len(pool.waiters)
            point = Point(
                second,
                1,
                requests,
                errors,
                quantile(buckets, 0.5),
                quantile(buckets, 0.99),
                ready,
                in_flight,
                queued,
                sum(memory.get(name, {}).values()),
            )
            minute = self.history.add(name, point, buckets)
            if minute is not None:
                self.store.add_rollup(name, minute.row())
        for gone in [key for key in self.tracks if key not in seen]:
            del self.tracks[gone]
        for function in [f for f in self.history.rings if f not in self.gateway.routes]:
            self.history.forget(function)
        if now - self._pruned > PRUNE_EVERY:
            self._pruned = now
            self.store.prune_rollups(now - KEEP)

    def memory(self) -> dict[str, dict[int, int]]:
        """Resident bytes of the live instances, by function and version."""
        found: dict[str, dict[int, int]] = {}
        for instance in self.instances():
            versions = found.setdefault(instance.function, {})
            versions[instance.version] = versions.get(instance.version, 0) + instance.rss
        return found

    def series(self, function: str, seconds: float) -> list[dict[str, float]]:
        """The function's points over the last `seconds`: 1 s points from memory; for the
        time before the ring (a restart, or more than 15 minutes), the minute rows: those
        of this process that end before the ring begins, and every one of an earlier
        process (kept at its shutdown, the minute in progress included)."""
        now = self.clock()
        since = now - seconds
        recent = self.history.points(function, since)
        first = recent[0].t if recent else now
        older = [
            Point(**row)
            for row in self.store.rollups(function, since - 60)
            if row["t"] + 60 <= first or (row["t"] < self.started and row["t"] < first)
        ]
        return [p.shown() for p in (*older, *recent)]

    def current(self) -> list[dict[str, Any]]:
        """Each serving version over the last WINDOW seconds: what `hearth top` shows."""
        memory = self.memory()
        rows: list[dict[str, Any]] = []
        for name, route in self.gateway.routes.items():
            for pool in route.pools:
                track = self.tracks.get(pool)
                rows.append(
                    {
                        "function": name,
                        "version": pool.version,
                        "weight": pool.weight,
                        **_rates(track),
                        "instances": len(pool.backends),
                        "in_flight": sum(b.in_flight for b in pool.backends),
                        "queued": len(pool.waiters),
                        "memory_bytes": memory.get(name, {}).get(pool.version, 0),
                    }
                )
        rows.sort(key=lambda row: (-row["rps"], row["function"], row["version"]))
        return rows


def _rates(track: Track | None) -> dict[str, float]:
    if track is None or len(track.looks) < 2:
        return {"rps": 0.0, "errors_per_s": 0.0, "p50_ms": 0.0, "p99_ms": 0.0}
    t0, r0, e0, b0 = track.looks[0]
    t1, r1, e1, b1 = track.looks[-1]
    span = max(t1 - t0, 1e-3)
    buckets = [b - a for a, b in zip(b0, b1, strict=True)]
    return {
        "rps": round((r1 - r0) / span, 2),
        "errors_per_s": round((e1 - e0) / span, 2),
        "p50_ms": round(quantile(buckets, 0.5) * 1000, 2),
        "p99_ms": round(quantile(buckets, 0.99) * 1000, 2),
    }
