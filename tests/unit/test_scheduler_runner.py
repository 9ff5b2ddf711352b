"""The scheduler's passes in-process: a real store, a fake gateway call, times the test
gives. What fires, what is skipped, what is recorded, and what survives a restart."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from hearth.builder.envs import Env
from hearth.control.model import Function, Release
from hearth.gateway import Pool, RouteLimits
from hearth.scheduler.call import Answer
from hearth.scheduler.runner import Scheduler, serving
from hearth.spec import FunctionSpec, Limits, Schedule
from hearth.store import Store

T0 = 1_700_000_000.0
EVERY_2S = Schedule(every=2.0, path="/tick")


class FakeGateway:
    """Answers each run with `status`; with `hold`, runs wait until it is set."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Schedule, float]] = []
        self.status: int | None = 200
        self.hold: asyncio.Event | None = None

    async def __call__(self, function: str, schedule: Schedule, timeout: float) -> Answer:
        self.calls.append((function, schedule, timeout))
        if self.hold is not None:
            await self.hold.wait()
        if self.status is None:
            return Answer(None, 0.01, "ConnectError: connection refused")
        return Answer(self.status, 0.01)


def release(name: str, number: int, spec: FunctionSpec, weight: int = 100) -> Release:
    pool = Pool(name, number, RouteLimits(), weight=weight)
    return Release(name, number, spec, Env("base", "python3", []), Path("/code"), pool)


class World:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = Store(path)
        self.functions: dict[str, Function] = {}
        self.gateway = FakeGateway()
        self.now = T0
        self.scheduler = self.fresh_scheduler()

    def fresh_scheduler(self) -> Scheduler:
        """A scheduler as a restarted daemon makes it: nothing in memory, the same store."""
        return Scheduler(self.store, self.functions, self.gateway, clock=lambda: self.now)

    def serve(self, name: str, *schedules: Schedule, timeout: float = 30.0) -> None:
        spec = FunctionSpec(name=name, limits=Limits(timeout=timeout), schedules=schedules)
        if not self.store.exists(name):
            self.store.new_version(name, "sha", "base", spec.to_dict())
        self.functions[name] = Function(name, {1: release(name, 1, spec)})

    async def at(self, seconds: float) -> None:
        """One pass at T0 + seconds, then let the runs it started answer."""
        self.now = T0 + seconds
        self.scheduler.step(self.now)
        for _ in range(5):
            await asyncio.sleep(0)

    def events(self, name: str = "job") -> list[tuple[str, str]]:
        return [(e["kind"], e["message"]) for e in self.store.events(name)]

    def row(self, name: str = "job", schedule: Schedule = EVERY_2S):
        return self.store.schedule_rows(name).get(schedule.key)


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path / "hearth.db")
    yield w
    w.store.close()


async def test_a_new_schedule_starts_from_now_then_fires_at_each_tick(world):
    world.serve("job", EVERY_2S, timeout=12.0)
    await world.at(0)
    assert world.gateway.calls == []  # nothing for the past
    assert world.row().last_due == T0
    await world.at(1.9)
    assert world.gateway.calls == []
    await world.at(2.05)
    assert world.gateway.calls == [("job", EVERY_2S, 12.0)]
    await world.at(2.5)
    await world.at(4.0)
    assert len(world.gateway.calls) == 2
    assert world.events() == [
        ("schedule", "POST /tick -> 200 in 0.01s (every 2s)"),
        ("schedule", "POST /tick -> 200 in 0.01s (every 2s)"),
    ]
    row = world.row()
    assert (row.last_due, row.last_run, row.last_status) == (T0 + 4, T0 + 4, 200)


async def test_a_run_still_going_makes_the_next_ticks_skipped_never_doubled(world):
    world.serve("job", EVERY_2S)
    world.gateway.hold = asyncio.Event()
    await world.at(0)
    await world.at(2)
    await world.at(4)
    await world.at(6.5)
    assert len(world.gateway.calls) == 1
    assert world.events() == [
        ("schedule-skipped", "POST /tick (every 2s): previous run still going (started 2.0s ago)"),
        ("schedule-skipped", "POST /tick (every 2s): previous run still going (started 4.5s ago)"),
    ]
    assert world.row().last_due == T0 + 6  # skipped ticks are recorded: not run later
    assert world.scheduler.describe()[0]["running"] is True
    world.gateway.hold.set()
    await world.at(7)
    assert world.events()[-1][0] == "schedule"
    await world.at(8)
    assert len(world.gateway.calls) == 2


async def test_ticks_missed_while_down_run_once_at_start(world):
    world.serve("job", EVERY_2S)
    await world.at(0)
    await world.at(2)
    assert len(world.gateway.calls) == 1
    world.scheduler = world.fresh_scheduler()  # the daemon was down from 2.5 to 9
    await world.at(9)
    assert len(world.gateway.calls) == 2
    assert world.events()[-1] == (
        "schedule",
        "POST /tick -> 200 in 0.01s (every 2s; missed 3 ticks while down: ran once)",
    )
    assert world.row().last_due == T0 + 8
    await world.at(9.5)
    assert len(world.gateway.calls) == 2  # once, not once per missed tick
    await world.at(10)
    assert world.events()[-1] == ("schedule", "POST /tick -> 200 in 0.01s (every 2s)")


async def test_a_restart_between_ticks_runs_nothing_extra(world):
    world.serve("job", EVERY_2S)
    await world.at(0)
    await world.at(2)
    world.scheduler = world.fresh_scheduler()
    await world.at(3)
    assert len(world.gateway.calls) == 1
    await world.at(4)
    assert len(world.gateway.calls) == 2  # the phase survived the restart


async def test_a_tick_recorded_before_its_run_is_not_run_again_after_a_crash(world):
    world.serve("job", EVERY_2S)
    world.gateway.hold = asyncio.Event()
    await world.at(0)
    await world.at(2)  # the run starts; the daemon dies before it answers
    world.scheduler = world.fresh_scheduler()
    world.gateway.hold = None
    await world.at(2.5)
    assert len(world.gateway.calls) == 1
    row = world.row()
    assert (row.last_run, row.last_status) == (T0 + 2, None)


async def test_failures_are_events_with_the_reason(world):
    world.serve("job", EVERY_2S)
    await world.at(0)
    world.gateway.status = 503
    await world.at(2)
    world.gateway.status = None
    await world.at(4)
    assert world.events() == [
        ("schedule-failed", "POST /tick -> 503 in 0.01s (every 2s)"),
        (
            "schedule-failed",
            "POST /tick failed after 0.01s: ConnectError: connection refused (every 2s)",
        ),
    ]
    row = world.row()
    assert (row.last_status, row.last_error) == (None, "ConnectError: connection refused")


async def test_the_release_with_the_largest_share_sets_the_schedules(world):
    old = FunctionSpec(name="job", schedules=(EVERY_2S,))
    new = FunctionSpec(name="job", schedules=(Schedule(cron="* * * * *"),))
    world.functions["job"] = Function(
        "job", {1: release("job", 1, old, weight=90), 2: release("job", 2, new, weight=10)}
    )
    assert serving(world.functions)["job"] is old
    world.functions["job"].releases[2].pool.weight = 90
    assert serving(world.functions)["job"] is new  # a tie: the newer


async def test_a_schedule_taken_out_is_forgotten_and_put_back_starts_from_then(world):
    other = Schedule(cron="0 3 * * *")
    world.serve("job", EVERY_2S, other)
    await world.at(0)
    assert set(world.store.schedule_rows("job")) == {EVERY_2S.key, other.key}
    world.serve("job", other)  # a deploy without it
    await world.at(1)
    assert set(world.store.schedule_rows("job")) == {other.key}
    world.serve("job", EVERY_2S, other)  # back, much later
    await world.at(101)
    assert world.gateway.calls == []  # no run for the time it was gone
    await world.at(103)
    assert len(world.gateway.calls) == 1


async def test_a_changed_schedule_is_a_new_one(world):
    world.serve("job", EVERY_2S)
    await world.at(0)
    slower = replace(EVERY_2S, every=3.0)
    world.serve("job", slower)
    await world.at(2.5)
    assert world.gateway.calls == []
    await world.at(5.5)
    assert [call[1] for call in world.gateway.calls] == [slower]


async def test_a_removed_function_gets_no_events_from_a_run_in_flight(world):
    world.serve("job", EVERY_2S)
    world.gateway.hold = asyncio.Event()
    await world.at(0)
    await world.at(2)
    del world.functions["job"]
    world.store.remove("job")  # `hearth rm`
    await world.at(3)
    world.gateway.hold.set()
    await world.at(4)
    assert world.store.events("job") == []
    assert world.store.schedule_rows("job") == {}


async def test_closing_cuts_a_run_that_outlived_the_drain_and_says_so(world):
    world.serve("job", EVERY_2S)
    world.gateway.hold = asyncio.Event()
    await world.at(0)
    await world.at(2)
    await world.scheduler.close(grace=0.01)
    assert world.events()[-1][0] == "schedule-failed"
    assert "the daemon stopped during the run" in world.events()[-1][1]
    assert world.scheduler.describe()[0]["running"] is False


async def test_describe_shows_next_and_last_runs(world):
    daily = Schedule(cron="0 3 * * *", method="GET")
    world.serve("job", EVERY_2S, daily)
    world.serve("quiet")
    assert world.scheduler.describe()[0]["next_run"] == T0 + 2  # before the first pass too
    await world.at(0)
    await world.at(2)
    now = world.now
    first, second = world.scheduler.describe()
    assert first == {
        "function": "job",
        "schedule": "every 2s",
        "cron": None,
        "every": 2.0,
        "method": "POST",
        "path": "/tick",
        "next_run": T0 + 4,
        "last_run": T0 + 2,
        "last_status": 200,
        "last_seconds": 0.01,
        "last_error": None,
        "running": False,
    }
    assert second["schedule"] == "0 3 * * *"
    assert now < second["next_run"] <= now + 86400
    assert second["last_run"] is None
    assert world.scheduler.describe(lambda name: name == "quiet") == []


async def test_the_loop_fires_on_time_and_stops(world, monkeypatch):
    import time

    world.serve("job", Schedule(every=1.0))
    world.scheduler = Scheduler(world.store, world.functions, world.gateway, clock=time.time)
    world.scheduler.start()
    try:
        await asyncio.sleep(1.3)
        assert len(world.gateway.calls) == 1
    finally:
        await world.scheduler.close()
    calls = len(world.gateway.calls)
    await asyncio.sleep(1.1)
    assert len(world.gateway.calls) == calls  # stopped: nothing more fires
