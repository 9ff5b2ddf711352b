"""How many instances a version should have, and how long to wait after crashes.

A concurrency autoscaler in the manner of Knative's KPA. Demand is what a version holds at
an instant: requests in flight plus requests queued. Each decision records it in the
version's `Window` (one bucket per second, the highest seen) and averages it over two
spans: the stable window (`window`, 60 s) and the panic window (`panic_window`, 6 s).
The count wanted is the average over the target per instance (`concurrency x target`).

- Stable: follow the stable average, up or down; down by at most `down_rate` (half) at a
  time, so a lull does not throw away warm instances in one step.
- Panic: when the panic average wants `panic` times (2x) the instances that are ready,
  follow the panic average at once, and do not scale down until a stable window has
  passed without panic.
- Burst: never fewer than what the requests here this instant need at full concurrency:
  a burst from zero starts instances at its first queued request, not a second later.
- Idle: no demand at all for `idle`: down to `min` (zero, if `min = 0`); before that the
  last instance stays (the grace before scaling to zero).
- Always within `min` and `max`. Only instances with nothing in flight are stopped, the
  longest idle first.

`decide` is called on every queued request (through the control plane's inbox) and on a
periodic tick. It does no I/O: it is tested by replaying traces through a clock the test
moves.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from hearth.spec import Scale
from hearth.units import format_duration


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

    @property
    def demand(self) -> int:
        """Requests in flight plus requests waiting."""
        return sum(i.in_flight for i in self.ready) + self.queued


@dataclass(frozen=True)
class Decision:
    start: int = 0
    stop: tuple[str, ...] = ()
    reason: str = ""  # why the count changes: "scaled 3 -> 8: panic, ..."


@dataclass
class Window:
    """What the autoscaler remembers of one version: demand per second, and panic."""

    buckets: deque[tuple[int, int]] = field(default_factory=deque)  # (second, highest demand)
    panic_until: float = -math.inf
    last_demand: float = -math.inf  # when demand was last above zero
    horizon: float = 3600.0

    def record(self, now: float, demand: int) -> None:
        second = math.floor(now)
        if self.buckets and self.buckets[-1][0] == second:
            if demand > self.buckets[-1][1]:
                self.buckets[-1] = (second, demand)
        else:
            self.buckets.append((second, demand))
        while self.buckets and self.buckets[0][0] <= second - self.horizon:
            self.buckets.popleft()
        if demand > 0:
            self.last_demand = now

    def average(self, now: float, span: float) -> float:
        """Mean demand over the seconds of the last `span` seconds that have a sample."""
        since = math.floor(now) - span
        values = [v for s, v in reversed(self.buckets) if s > since]
        return sum(values) / len(values) if values else 0.0


def decide(obs: Observation, scale: Scale, window: Window, now: float) -> Decision:
    window.horizon = max(scale.window, scale.panic_window)
    demand = obs.demand
    window.record(now, demand)
    current = len(obs.ready) + obs.starting
    per_instance = scale.concurrency * scale.target
    stable = window.average(now, scale.window)
    panic = window.average(now, scale.panic_window)
    want_stable = math.ceil(stable / per_instance)
    want_panic = math.ceil(panic / per_instance)
    want_now = math.ceil(demand / scale.concurrency)

    if want_panic >= scale.panic * max(len(obs.ready), 1) and want_panic > current:
        window.panic_until = now + scale.window
    if now < window.panic_until:
        wanted, mode, measured = max(want_panic, current), "panic", panic
    else:
        wanted, mode, measured = want_stable, "stable", stable
        if wanted < current:  # at most 1/down_rate of them at a time
            wanted = max(wanted, math.ceil(current / scale.down_rate))
    if want_now > wanted:
        wanted, mode, measured = want_now, "burst", demand
    # Quiet since the last request seen by a sample or finished by an instance.
    quiet = min([now - window.last_demand, *(i.idle_for for i in obs.ready)])
    if demand == 0 and quiet >= scale.idle:
        wanted, mode = 0, f"no requests for {format_duration(scale.idle)}"
    elif wanted == 0 and current > 0:
        wanted = 1  # the last instance stays until the function has been idle for `idle`
    wanted = min(max(wanted, scale.min), scale.max)

    if wanted > current:
        why = mode if mode.startswith("no requests") else _load(mode, measured, current, scale)
        if current < scale.min and wanted == scale.min:
            why = f"min = {scale.min}"
        return Decision(start=wanted - current, reason=f"scaled {current} -> {wanted}: {why}")
    if wanted < current and not obs.starting:
        idle = sorted(
            (i for i in obs.ready if i.in_flight == 0), key=lambda i: i.idle_for, reverse=True
        )
        stop = tuple(i.id for i in idle[: current - wanted])
        if stop:
            after = current - len(stop)
            why = mode if mode.startswith("no requests") else _load(mode, measured, current, scale)
            return Decision(stop=stop, reason=f"scaled {current} -> {after}: {why}")
    return Decision()


def _load(mode: str, measured: float, current: int, scale: Scale) -> str:
    what = "requests now" if mode == "burst" else "concurrency"
    return f"{mode}, {what} {measured:.0f} vs capacity {current * scale.concurrency}"


def backoff(failures: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before the next start after `failures` consecutive failures."""
    if failures <= 0:
        return 0.0
    return float(min(cap, base * 2.0 ** (failures - 1)))
