"""What the control plane counts: instance starts (cold or not) and how long they took,
exits by reason, recycles, deploys by result and how long they took. Plain counters,
bumped by the reconciler and the rollouts, read by the scrape."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field

from hearth.gateway.meter import BUCKETS


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds


def exit_reason(stopped: bool, kill_reason: str | None) -> str:
    """An exit's label: stopped (by Hearth), crash, hang, memory or killed (other)."""
    if stopped:
        return "stopped"
    if kill_reason is None:
        return "crash"
    if "heartbeat" in kill_reason:
        return "hang"
    if "memory" in kill_reason:
        return "memory"
    return "killed"


@dataclass
class Tally:
    starts: Counter[tuple[str, int, bool]] = field(default_factory=Counter)  # cold or warm
    start_seconds: dict[tuple[str, bool], Histogram] = field(default_factory=dict)
    start_failures: Counter[tuple[str, int]] = field(default_factory=Counter)
    exits: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    recycles: Counter[tuple[str, int]] = field(default_factory=Counter)
    deploys: Counter[tuple[str, str]] = field(default_factory=Counter)
    deploy_seconds: dict[str, Histogram] = field(default_factory=dict)

    def started(self, function: str, version: int, cold: bool, seconds: float) -> None:
        self.starts[function, version, cold] += 1
        self.start_seconds.setdefault((function, cold), Histogram()).observe(seconds)

    def start_failed(self, function: str, version: int) -> None:
        self.start_failures[function, version] += 1

    def exited(self, function: str, version: int, reason: str) -> None:
        self.exits[function, version, reason] += 1

    def recycled(self, function: str, version: int) -> None:
        self.recycles[function, version] += 1

    def deployed(self, function: str, ok: bool, seconds: float) -> None:
        result = "ok" if ok else "failed"
        self.deploys[function, result] += 1
        self.deploy_seconds.setdefault(result, Histogram()).observe(seconds)

    def forget(self, function: str) -> None:
        """A removed function's series go with it."""
        for counter in (self.starts, self.start_failures, self.exits, self.recycles, self.deploys):
            for key in [k for k in counter if k[0] == function]:
                del counter[key]
        for key in [k for k in self.start_seconds if k[0] == function]:
            del self.start_seconds[key]
