"""How many instances a function should have, and how long to wait after crashes.

`decide` is called on every queued request (to react at once) and on a periodic tick
(to reclaim idle instances). It never does I/O, so it is tested with plain values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hearth.spec import Scale


@dataclass(frozen=True)
class InstanceLoad:
    id: str
    in_flight: int
    idle_for: float  # seconds since its last request finished; 0 while busy


@dataclass(frozen=True)
class Observation:
    ready: tuple[InstanceLoad, ...]
    starting: int
    queued: int


@dataclass(frozen=True)
class Decision:
    start: int = 0
    stop: tuple[str, ...] = ()


def decide(obs: Observation, scale: Scale) -> Decision:
    total = len(obs.ready) + obs.starting
    if total < scale.min:
        return Decision(start=scale.min - total)
    if obs.queued:
        # Requests wait: add instances for what the ones already starting will not absorb.
        waiting = obs.queued - obs.starting * scale.concurrency
        if waiting > 0 and total < scale.max:
            return Decision(start=min(math.ceil(waiting / scale.concurrency), scale.max - total))
        return Decision()
    surplus = total - scale.min
    if surplus <= 0 or obs.starting:
        return Decision()
    idle = sorted(
        (i for i in obs.ready if i.in_flight == 0 and i.idle_for >= scale.idle),
        key=lambda i: i.idle_for,
        reverse=True,
    )
    return Decision(stop=tuple(i.id for i in idle[:surplus]))


def backoff(failures: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before the next start after `failures` consecutive failures."""
    if failures <= 0:
        return 0.0
    return float(min(cap, base * 2.0 ** (failures - 1)))
