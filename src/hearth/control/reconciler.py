"""The reconciler: one loop that reads the inbox and moves each function towards what it
should be, the way gunicorn's arbiter keeps its workers and a Kubernetes controller its
replicas.

Events come from the data plane (`inbox.py`); the decisions are pure functions (how many
instances, how long to wait after crashes: `hearth.autoscaler`); the commands go to the
supervisor (start, stop) and the gateway (add a backend, drain it). Rollouts (deploy,
traffic, roll) change which releases serve through the same records and commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from hearth.autoscaler import InstanceLoad, Observation, backoff, decide
from hearth.control.inbox import Demand, Event, Exited, Inbox, LimitHit, Recycle, Tick
from hearth.control.model import Function, Release, Replica, budget
from hearth.control.ports import Router, Runner
from hearth.gateway import Backend
from hearth.metrics.tally import Tally, exit_reason
from hearth.store import Store
from hearth.supervisor import Instance, InstanceState, StartError
from hearth.supervisor.supervisor import describe_exit

log = logging.getLogger("hearth")
CRASH_WINDOW = 30.0  # an instance that dies younger than this counts towards a crash loop


class Reconciler:
    def __init__(
        self,
        store: Store,
        runner: Runner,
        router: Router,
        inbox: Inbox | None = None,
        clock: Callable[[], float] = time.monotonic,
        tally: Tally | None = None,
    ) -> None:
        self.tally = tally if tally is not None else Tally()
        self.store = store
        self.runner = runner
        self.router = router
        self.inbox = inbox if inbox is not None else Inbox()
        self.clock = clock
        self.functions: dict[str, Function] = {}
        self.replicas: dict[str, Replica] = {}  # by instance id, until the instance exits
        self._tasks: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"<Reconciler {sorted(self.functions)} inbox={len(self.inbox)}>"

    # the loop

    async def run(self) -> None:
        while True:
            event = await self.inbox.get()
            try:
                self.handle(event)
            except Exception:  # one bad event must not stop the control plane
                log.exception("could not handle %r", event)

    def drain_inbox(self) -> None:
        """Handle every event posted so far (tests, and before a shutdown)."""
        while (event := self.inbox.take()) is not None:
            self.handle(event)

    def handle(self, event: Event) -> None:
        if isinstance(event, Demand):
            function = self.functions.get(event.function)
            release = function.releases.get(event.version) if function else None
            if function is not None and release is not None:
                self.scale_release(function, release)
        elif isinstance(event, Recycle):
            self._recycle(event)
        elif isinstance(event, Exited):
            self._exited(event.instance)
        elif isinstance(event, LimitHit):
            if self.store.exists(event.function):
                self.store.event(event.function, "limit", event.message)
        elif isinstance(event, Tick):
            self.runner.check()
            for function in list(self.functions.values()):
                self.scale(function)

    # scaling and healing

    def observe(self, release: Release) -> Observation:
        now = self.clock()
        ready = []
        for replica in release.replicas:
            backend = replica.backend
            if replica.instance.state == InstanceState.READY:
                idle = 0.0 if backend.in_flight else now - backend.idle_since
                ready.append(InstanceLoad(replica.id, backend.in_flight, idle))
        return Observation(tuple(ready), release.starting, len(release.pool.waiters))

    def scale(self, function: Function) -> None:
        for release in list(function.releases.values()):
            self.scale_release(function, release)

    def scale_release(self, function: Function, release: Release) -> None:
        observed = self.observe(release)
        decision = decide(observed, release.spec.scale, release.window, self.clock())
        if decision.start:
            wait = function.next_try - self.clock()
            if wait > 0:
                if function.retry is None:
                    function.retry = asyncio.get_running_loop().call_later(
                        wait, self._retry, function
                    )
                return
            self._scaled(function, release, decision.reason)
            cold = not observed.ready and observed.queued > 0  # requests wait for it
            for _ in range(decision.start):
                release.starting += 1
                self.background(self._start_one(function, release, cold))
        if decision.stop:
            self._scaled(function, release, decision.reason)
        for instance_id in decision.stop:
            replica = release.replica(instance_id)
            if replica is None:
                continue
            release.replicas.remove(replica)
            self.background(self.retire(replica))

    def _scaled(self, function: Function, release: Release, reason: str) -> None:
        many = len(function.releases) > 1
        self.store.event(function.name, "scale", f"v{release.number} {reason}" if many else reason)

    def _retry(self, function: Function) -> None:
        function.retry = None
        if self.functions.get(function.name) is function:
            self.scale(function)

    async def _start_one(self, function: Function, release: Release, cold: bool) -> None:
        began = time.monotonic()
        try:
            instance = await self.spawn(release)
        except StartError as exc:
            self.tally.start_failed(function.name, release.number)
            function.failures += 1
            function.last_error = str(exc)
            function.next_try = self.clock() + backoff(function.failures)
            self.store.event(
                function.name,
                "start-failed",
                f"v{release.number} failed to start (attempt {function.failures}, next in "
                f"{backoff(function.failures):.1f}s):\n{exc}",
            )
            return
        finally:
            release.starting -= 1
        self.tally.started(function.name, release.number, cold, time.monotonic() - began)
        if function.releases.get(release.number) is not release:
            await self.runner.stop(instance, release.spec.limits.drain)
            return
        self.route(release, instance)
        self.store.event(function.name, "start", f"{instance.id} ready (pid {instance.pid})")
        self.scale_release(function, release)

    def _recycle(self, event: Recycle) -> None:
        replica = self.replicas.get(event.instance_id)
        function = self.functions.get(event.function)
        if replica is None or function is None or replica not in replica.release.replicas:
            return
        replica.release.replicas.remove(replica)
        self.tally.recycled(function.name, replica.release.number)
        self.store.event(function.name, "recycle", f"{replica.id} {event.reason}; replacing it")
        self.background(self.retire(replica))
        self.scale_release(function, replica.release)

    def _exited(self, instance: Instance) -> None:
        """Every exit; instances that crashed are replaced, after a backoff if they die
        young."""
        replica = self.replicas.pop(instance.id, None)
        stopped = instance.state != InstanceState.CRASHED
        if instance.function in self.functions:
            reason = exit_reason(stopped, instance.kill_reason)
            self.tally.exited(instance.function, instance.version, reason)
        if stopped and self.store.exists(instance.function):
            self.store.event(
                instance.function, "exit", f"{instance.id} stopped ({_stopped(instance.exit_code)})"
            )
        function = self.functions.get(instance.function)
        if replica is None or function is None or replica not in replica.release.replicas:
            return
        release = replica.release
        release.replicas.remove(replica)
        self.router.remove_backend(release.pool, replica.backend)
        if instance.state != InstanceState.CRASHED:
            return
        lived = time.time() - instance.started
        function.failures = function.failures + 1 if lived < CRASH_WINDOW else 1
        function.next_try = self.clock() + backoff(function.failures)
        if instance.kill_reason:
            function.last_error = f"{instance.id} killed: {instance.kill_reason}"
            self.store.event(function.name, "killed", function.last_error)
        else:
            code = instance.exit_code
            function.last_error = f"{instance.id} exited unexpectedly (exit code {code})"
            self.store.event(function.name, "crash", function.last_error)
        log.warning("%s; replacing it", function.last_error)
        if function.releases.get(release.number) is release:
            self.scale_release(function, release)

    # commands

    def spawn(self, release: Release) -> Coroutine[Any, Any, Instance]:
        spec = release.spec
        return self.runner.start(
            release.function,
            release.number,
            release.env,
            release.code,
            spec.entrypoint,
            release.user_env,
            spec.scale.concurrency,
            spec.limits.drain,
            spec.limits.memory,
            spec.network.egress,
            budget(spec),
            spec.limits.liveness,
        )

    async def start_many(self, release: Release, count: int) -> None:
        """Start `count` instances and route them; the first error after all settled."""
        began = time.monotonic()
        results = await asyncio.gather(
            *(self.spawn(release) for _ in range(count)), return_exceptions=True
        )
        took = time.monotonic() - began
        for instance in (r for r in results if isinstance(r, Instance)):
            self.tally.started(release.function, release.number, False, took)
            self.route(release, instance)
        errors = [r for r in results if isinstance(r, BaseException)]
        for _ in errors:
            self.tally.start_failed(release.function, release.number)
        if errors:
            raise errors[0]

    def route(self, release: Release, instance: Instance) -> Replica:
        backend = Backend(instance.id, instance.socket, instance.concurrency)
        replica = Replica(instance, backend, release)
        self.replicas[instance.id] = replica
        release.replicas.append(replica)
        release.pool.add(backend)
        if not instance.alive:  # it exited before it was routed: the exit was not seen
            self._exited(instance)
        return replica

    async def kill_all(self, release: Release) -> None:
        replicas, release.replicas = release.replicas, []
        await asyncio.gather(*(self.runner.kill(r.instance) for r in replicas))

    def retire_all(self, release: Release) -> None:
        """Drain and stop a release that no longer serves, then its zygote."""
        replicas, release.replicas = release.replicas, []
        self.background(self._retire_release(release, replicas))

    async def _retire_release(self, release: Release, replicas: list[Replica]) -> None:
        await asyncio.gather(*(self.retire(r) for r in replicas))
        function = self.functions.get(release.function)
        if function is None or release.number not in function.releases:  # not back since
            self.runner.stop_zygote(release.function, release.number)

    async def retire(self, replica: Replica) -> None:
        """Not-ready, drain in-flight requests (with a deadline), then stop."""
        instance = replica.instance
        if instance.state == InstanceState.CRASHED or not instance.alive:
            return
        instance.state = InstanceState.DRAINING
        drain = replica.release.spec.limits.drain
        await self.router.drain(replica.release.pool, replica.backend, drain)
        await self.runner.stop(instance, drain + 5.0)

    async def retire_function(self, function: Function) -> None:
        """Every instance of a function that is going away, drained at once."""
        if function.retry is not None:
            function.retry.cancel()
        retiring: list[Coroutine[Any, Any, None]] = []
        for release in function.releases.values():
            replicas, release.replicas = release.replicas, []
            retiring.extend(self.retire(r) for r in replicas)
        await asyncio.gather(*retiring)

    # tasks

    def background(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown(self) -> None:
        """Drain and stop every instance, all functions at once; then the tasks."""
        await asyncio.gather(*(self.retire_function(f) for f in self.functions.values()))
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _stopped(code: int | None) -> str:
    """How an instance we stopped ended: uvicorn re-raises the SIGTERM it drained on."""
    return "drained, then ended by SIGTERM" if code == -15 else describe_exit(code)
