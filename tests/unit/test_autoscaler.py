"""The autoscaler's decisions, one at a time and over load traces replayed through a clock
the test moves (a decision per simulated second, as the control plane's tick makes)."""

from __future__ import annotations

import itertools
import math

from hearth.autoscaler import Decision, InstanceLoad, Observation, Window, backoff, decide
from hearth.spec import Scale


def ready(*loads):
    return tuple(
        InstanceLoad(f"i{n}", in_flight, idle) for n, (in_flight, idle) in enumerate(loads)
    )


class Sim:
    """Instances that take `start_delay` seconds to become ready; demand spread over the
    ready ones up to their concurrency, the rest queued."""

    def __init__(self, scale: Scale, start_delay: float = 1.0) -> None:
        self.scale = scale
        self.start_delay = start_delay
        self.window = Window()
        self.ready_at: dict[str, float] = {}
        self.busy_until: dict[str, float] = {}
        self.made = 0
        self.history: list[tuple[float, int, Decision]] = []

    def step(self, now: float, demand: int) -> Decision:
        loads, left = [], demand
        for name, at in self.ready_at.items():
            if at > now:
                continue
            take = min(self.scale.concurrency, left)
            left -= take
            if take:
                self.busy_until[name] = now
            loads.append(InstanceLoad(name, take, 0.0 if take else now - self.busy_until[name]))
        starting = len(self.ready_at) - len(loads)
        decision = decide(Observation(tuple(loads), starting, left), self.scale, self.window, now)
        for _ in range(decision.start):
            self.made += 1
            name = f"i{self.made}"
            self.ready_at[name] = now + self.start_delay
            self.busy_until[name] = now + self.start_delay
        for name in decision.stop:
            del self.ready_at[name]
        self.history.append((now, len(self.ready_at), decision))
        return decision

    def run(self, trace, until: float) -> None:
        """`trace(t)` is the demand at second t."""
        t = 0.0
        while t <= until:
            self.step(t, trace(t))
            t += 1.0

    def count_at(self, t: float) -> int:
        return next(n for time, n, _ in reversed(self.history) if time <= t)

    def reasons(self) -> list[str]:
        return [d.reason for _, _, d in self.history if d.reason]


# single decisions


def test_starts_up_to_min_and_says_so():
    scale = Scale(min=2, max=4)
    assert decide(Observation((), 0, 0), scale, Window(), 0.0) == Decision(
        start=2, reason="scaled 0 -> 2: min = 2"
    )
    assert decide(Observation((), 2, 0), scale, Window(), 0.0) == Decision()


def test_a_queued_request_starts_the_first_instance_at_once():
    decision = decide(Observation((), 0, queued=1), Scale(min=0), Window(), 0.0)
    assert decision.start == 1


def test_a_burst_starts_what_it_needs_now_within_max():
    scale = Scale(min=0, max=10, concurrency=10)
    assert decide(Observation((), 0, queued=45), scale, Window(), 0.0).start == 7  # 45 / 7
    assert decide(Observation((), 0, queued=500), scale, Window(), 0.0).start == 10


def test_instances_already_starting_count():
    scale = Scale(min=0, max=10, concurrency=10, target=1.0)
    assert decide(Observation((), 5, queued=45), scale, Window(), 0.0) == Decision()


def test_only_idle_instances_are_stopped_longest_idle_first():
    scale = Scale(min=0, idle=10.0)
    obs = Observation(ready((0, 11.0), (0, 30.0), (0, 12.0)), 0, 0)
    window = Window()
    assert decide(obs, scale, window, 100.0).stop == ("i1", "i2", "i0")
    busy = Observation(ready((1, 0.0), (0, 30.0)), 0, 0)
    assert "i0" not in decide(busy, Scale(min=0, concurrency=1), Window(), 100.0).stop


def test_the_last_instance_waits_for_idle_before_zero():
    scale = Scale(min=0, idle=30.0, window=6.0, panic_window=6.0)
    window = Window()
    assert decide(Observation(ready((0, 29.0)), 0, 0), scale, window, 100.0) == Decision()
    assert decide(Observation(ready((0, 31.0)), 0, 0), scale, window, 102.0) == Decision(
        stop=("i0",), reason="scaled 1 -> 0: no requests for 30s"
    )


def test_a_window_forgets_what_is_older_than_it():
    window = Window()
    window.record(0.0, 100)
    window.record(0.5, 300)  # the same second: the highest counts
    window.record(10.0, 0)
    assert window.average(10.0, 60.0) == 150.0
    assert window.average(10.0, 5.0) == 0.0


# load traces


def test_step_load_scales_to_the_target_and_stays():
    scale = Scale(min=1, max=20, concurrency=10, target=0.7, idle=300.0)
    sim = Sim(scale)
    sim.run(lambda t: 64 if 10 <= t < 130 else 0, until=200)
    assert sim.count_at(9) == 1
    assert sim.count_at(12) >= math.ceil(64 / 10)  # what the requests need, at once
    steady = {sim.count_at(t) for t in range(80, 130)}
    assert steady == {math.ceil(64 / 7)}  # 64 in flight at 7 per instance: 10
    assert max(n for _, n, _ in sim.history) <= 20


def test_ramp_grows_steadily_and_never_past_what_it_needs():
    scale = Scale(min=1, max=50, concurrency=10, target=0.7)
    sim = Sim(scale)
    sim.run(lambda t: int(2 * t), until=100)  # 0 -> 200 in flight over 100 s
    counts = [sim.count_at(t) for t in range(0, 101, 5)]
    assert counts == sorted(counts)  # never down while it grows
    assert counts[-1] <= math.ceil(200 / 7) + 1
    assert counts[-1] >= math.ceil(200 / 10)


def test_a_spike_panics_up_at_once_and_holds_through_the_window():
    scale = Scale(min=1, max=100, concurrency=10, target=0.7, window=60.0, panic_window=6.0)
    sim = Sim(scale)
    sim.run(lambda t: 500 if 20 <= t < 23 else 5, until=200)
    assert sim.count_at(20) >= 50  # 500 in flight at 10 each, started in the same second
    assert sim.reasons()[1] == "scaled 1 -> 50: burst, requests now 500 vs capacity 10"
    # Panic forbids scaling down for a stable window after it last triggered.
    assert sim.count_at(70) == sim.count_at(21)
    # Then down, at most by half per decision, to what 5 in flight need.
    later = [sim.count_at(t) for t in range(83, 200)]
    assert later[-1] == 1
    for before, after in itertools.pairwise(later):
        assert after >= math.ceil(before / 2)


def test_drop_to_zero_waits_for_idle_then_goes():
    scale = Scale(min=0, max=10, concurrency=10, idle=30.0, window=10.0, panic_window=2.0)
    sim = Sim(scale)
    sim.run(lambda t: 30 if t < 40 else 0, until=120)
    assert sim.count_at(39) >= 3
    assert sim.count_at(60) >= 1  # quiet for 20 s: the last one stays
    assert sim.count_at(75) == 0  # quiet for 35 s: gone
    assert "no requests for 30s" in sim.reasons()[-1]


def test_min_and_max_hold_under_any_load():
    scale = Scale(min=2, max=4, concurrency=1)
    sim = Sim(scale)
    sim.run(lambda t: 1000 if t % 20 < 10 else 0, until=100)
    assert all(2 <= n <= 4 for _, n, _ in sim.history[1:])


def test_backoff_grows_then_caps():
    assert backoff(0) == 0.0
    delays = [backoff(n) for n in range(1, 10)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert delays == sorted(delays)
    assert max(delays) == 30.0
