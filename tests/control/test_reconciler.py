"""The reconciler in-process, with a fake supervisor and gateway: events in, commands out.
No daemon, no processes, a clock the test moves."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from types import SimpleNamespace

import pytest

from hearth.builder.envs import Env
from hearth.control.inbox import Demand, Exited, Inbox, LimitHit, Recycle, Tick
from hearth.control.model import Function, Release
from hearth.control.reconciler import Reconciler
from hearth.gateway import Pool, RouteLimits
from hearth.spec import FunctionSpec, Scale
from hearth.store import Store
from hearth.supervisor import Instance, InstanceState, StartError


class FakeRunner:
    """Starts instances that are ready at once; the test crashes them at will."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self.instances: dict[int, Instance] = {}
        self.pids = itertools.count(100)
        self.failures_to_come = 0
        self.stopped: list[str] = []
        self.zygotes_stopped: list[tuple[str, int]] = []
        self.checks = 0

    async def start(
        self, function, version, env, code_dir, entrypoint, user_env, concurrency, *args
    ) -> Instance:
        await asyncio.sleep(0)
        if self.failures_to_come:
            self.failures_to_come -= 1
            raise StartError("ImportError: no module named 'missing'")
        pid = next(self.pids)
        instance = Instance(
            id=f"{function}@{version}#{pid}",
            function=function,
            version=version,
            env="base",
            socket=f"/nonexistent/{pid}.sock",
            concurrency=concurrency,
            pid=pid,
            state=InstanceState.READY,
        )
        self.instances[pid] = instance
        return instance

    async def stop(self, instance: Instance, grace: float) -> None:
        self.stopped.append(instance.id)
        instance.state = InstanceState.STOPPED
        self._end(instance, -15)

    async def kill(self, instance: Instance) -> None:
        await self.stop(instance, 0)

    def crash(self, instance: Instance, code: int = 1) -> None:
        instance.state = InstanceState.CRASHED
        self._end(instance, code)

    def _end(self, instance: Instance, code: int) -> None:
        if instance.exited.done():
            return
        instance.exit_code = code
        instance.exited.set_result(code)
        self.instances.pop(instance.pid, None)
        self.inbox.post(Exited(instance))

    def stop_zygote(self, function: str, version: int) -> None:
        self.zygotes_stopped.append((function, version))

    def check(self) -> None:
        self.checks += 1

    def set_budget(self, function, budget) -> None:
        self.budget = budget


class FakeRouter:
    def __init__(self) -> None:
        self.drained: list[str] = []
        self.removed: list[str] = []

    def set_pools(self, name, pools):
        return SimpleNamespace(access=None)

    def remove_route(self, name) -> None:
        pass

    async def drain(self, pool, backend, timeout) -> bool:
        pool.withdraw(backend)
        self.drained.append(backend.id)
        return True

    def remove_backend(self, pool, backend) -> None:
        pool.withdraw(backend)
        self.removed.append(backend.id)


class Waiter:
    """A queued request, as the pool sees it."""

    def __init__(self) -> None:
        self.backend = None

    def attach(self, backend) -> None:
        self.backend = backend
        backend.acquire()


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.now = 1000.0
        self.store = Store(tmp_path / "hearth.db")
        self.inbox = Inbox()
        self.runner = FakeRunner(self.inbox)
        self.router = FakeRouter()
        self.reconciler = Reconciler(
            self.store, self.runner, self.router, self.inbox, clock=lambda: self.now
        )

    def function(self, name: str = "fn", **scale) -> tuple[Function, Release]:
        self.store.new_version(name, "sha", "base", {"name": name})
        spec = FunctionSpec(name=name, scale=Scale(**scale))
        pool = Pool(name, 1, RouteLimits(), on_demand=lambda p: self.inbox.post(Demand(name, 1)))
        release = Release(name, 1, spec, Env("base", "python3", []), Path("/code"), pool)
        function = Function(name, {1: release})
        self.reconciler.functions[name] = function
        return function, release

    async def settle(self) -> None:
        """Handle every event, let the commands run, until nothing moves."""
        for _ in range(20):
            self.reconciler.drain_inbox()
            await asyncio.sleep(0)
        self.reconciler.drain_inbox()

    def events(self, name: str = "fn") -> list[tuple[str, str]]:
        return [(e["kind"], e["message"]) for e in self.store.events(name)]


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


async def test_queued_requests_start_instances_and_get_served(world):
    _, release = world.function(min=0, concurrency=4, target=1.0)
    waiters = [Waiter() for _ in range(6)]
    for waiter in waiters:
        release.pool.enqueue(waiter)  # the gateway queues: the pool posts Demand
    assert len(world.inbox) == 1  # six queued requests, one event
    await world.settle()
    assert len(release.replicas) == 2  # ceil(6 / 4)
    assert all(w.backend is not None for w in waiters)
    assert [kind for kind, _ in world.events()].count("start") == 2
    assert ("scale", "scaled 0 -> 2: panic, concurrency 6 vs capacity 0") in world.events()


async def test_min_instances_are_kept_on_every_tick(world):
    _, release = world.function(min=3)
    world.inbox.post(Tick())
    await world.settle()
    assert len(release.replicas) == 3
    assert world.runner.checks == 1  # the supervisor's health checks ran on the tick


async def test_a_crash_is_replaced_after_a_backoff_that_grows(world):
    function, release = world.function(min=1)
    world.inbox.post(Tick())
    await world.settle()
    (first,) = release.replicas
    world.runner.crash(first.instance)
    await world.settle()
    assert release.replicas == []
    assert function.failures == 1 and function.retry_in(world.now) == pytest.approx(0.5)
    assert first.id in world.router.removed
    assert ("crash", f"{first.id} exited unexpectedly (exit code 1)") in world.events()
    world.inbox.post(Tick())
    await world.settle()
    assert release.replicas == []  # still backing off
    world.now += 0.6
    world.inbox.post(Tick())
    await world.settle()
    (second,) = release.replicas
    world.runner.crash(second.instance)
    await world.settle()
    assert function.failures == 2 and function.retry_in(world.now) == pytest.approx(1.0)
    if function.retry is not None:
        function.retry.cancel()


async def test_a_failed_start_backs_off_and_says_why(world):
    function, release = world.function(min=1)
    world.runner.failures_to_come = 1
    world.inbox.post(Tick())
    await world.settle()
    assert release.replicas == [] and function.failures == 1
    assert "no module named 'missing'" in (function.last_error or "")
    assert [kind for kind, _ in world.events()] == ["scale", "start-failed"]
    world.now += 1
    world.inbox.post(Tick())
    await world.settle()
    assert len(release.replicas) == 1
    if function.retry is not None:
        function.retry.cancel()


async def test_a_recycled_instance_is_drained_and_replaced(world):
    _, release = world.function(min=1)
    world.inbox.post(Tick())
    await world.settle()
    (broken,) = release.replicas
    world.inbox.post(Recycle("fn", 1, broken.id, "wrote past the end of its response"))
    await world.settle()
    assert broken.id in world.router.drained and broken.id in world.runner.stopped
    (replacement,) = release.replicas
    assert replacement.id != broken.id
    assert ("recycle", f"{broken.id} wrote past the end of its response; replacing it") in (
        world.events()
    )


async def test_idle_instances_above_min_are_stopped_and_min_stays(world):
    _, release = world.function(min=1, max=4, idle=60.0, concurrency=1, target=1.0)
    for _ in range(3):
        release.pool.enqueue(Waiter())
    await world.settle()
    assert len(release.replicas) == 3
    for replica in release.replicas:
        replica.backend.release()
        replica.backend.idle_since = world.now  # each finished its request, then silence
    world.now += 61
    world.inbox.post(Tick())
    await world.settle()
    assert len(release.replicas) == 1
    assert ("scale", "scaled 3 -> 1: no requests for 1m") in world.events()


async def test_an_instance_that_stops_on_purpose_is_not_a_crash(world):
    function, release = world.function(min=1)
    world.inbox.post(Tick())
    await world.settle()
    (replica,) = release.replicas
    world.reconciler.retire_all(release)
    await world.settle()
    assert function.failures == 0
    assert ("exit", f"{replica.id} stopped (drained, then ended by SIGTERM)") in world.events()


async def test_a_limit_hit_is_an_event(world):
    world.function()
    world.inbox.post(LimitHit("fn", "the function's disk is full (limits.disk)"))
    await world.settle()
    assert world.events() == [("limit", "the function's disk is full (limits.disk)")]


def test_demand_and_ticks_are_coalesced_until_taken():
    inbox = Inbox()
    for _ in range(100):
        inbox.post(Demand("fn", 1))
        inbox.post(Tick())
    inbox.post(Demand("fn", 2))
    assert len(inbox) == 3
    assert inbox.take() == Demand("fn", 1)
    inbox.post(Demand("fn", 1))  # taken: a new one counts again
    assert len(inbox) == 3
