"""The control loop for functions: deploy, restore, scale, heal, remove.

This is where the pieces meet: the store says what should run, the builder prepares it,
the supervisor runs it, the gateway routes to it, the autoscaler decides how many.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hearth.autoscaler import InstanceLoad, Observation, backoff, decide
from hearth.builder.bundle import BundleError
from hearth.builder.envs import BuildError, Env, EnvBuilder
from hearth.config import DaemonConfig
from hearth.gateway import Backend, Gateway, Route
from hearth.gateway.routes import RouteLimits
from hearth.spec import FunctionSpec, SpecError, check_name, parse_spec
from hearth.store import BundleStore, Store
from hearth.supervisor import Instance, InstanceState, LogBook, StartError, Supervisor

log = logging.getLogger("hearth")
Progress = Callable[[str], None]
CRASH_WINDOW = 30.0  # an instance that dies younger than this counts towards a crash loop


class DeployError(Exception):
    """A deploy was refused or failed; the previous version (if any) keeps serving."""


class NotFound(KeyError):
    """No function by that name."""


@dataclass(eq=False)
class Function:
    name: str
    version: int
    spec: FunctionSpec
    env: Env
    code: Path
    route: Route
    instances: list[Instance] = field(default_factory=list)
    starting: int = 0
    failures: int = 0
    next_try: float = 0.0
    last_error: str | None = None
    retry: asyncio.TimerHandle | None = None


class Functions:
    def __init__(
        self,
        config: DaemonConfig,
        store: Store,
        bundles: BundleStore,
        envs: EnvBuilder,
        supervisor: Supervisor,
        gateway: Gateway,
        logs: LogBook,
    ) -> None:
        self.config = config
        self.store = store
        self.bundles = bundles
        self.envs = envs
        self.supervisor = supervisor
        self.gateway = gateway
        self.logs = logs
        self.functions: dict[str, Function] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"<Functions {sorted(self.functions)}>"

    # deploy

    async def deploy(self, name: str, data: bytes, progress: Progress) -> dict[str, Any]:
        began = time.monotonic()
        try:
            check_name(name)
        except SpecError as exc:
            raise DeployError(str(exc)) from exc
        if len(data) > self.config.max_bundle:
            raise DeployError(
                f"the bundle is {len(data)} bytes, over the limit of {self.config.max_bundle}"
            )
        progress(f"received bundle ({len(data)} bytes)")
        try:
            sha, code = await asyncio.to_thread(self.bundles.put, data, 4 * self.config.max_bundle)
            spec = replace(parse_spec(_read(code / "hearth.toml"), name), name=name)
            env = await self.envs.ensure(_read(code / "requirements.txt"), progress)
        except (BundleError, SpecError, BuildError) as exc:
            raise DeployError(str(exc)) from exc
        async with self._lock(name):
            previous = self.functions.get(name)
            number = self.store.new_version(name, sha, env.key, spec.to_dict())
            progress(f"starting {name} v{number}")
            try:
                instances = await self._start_many(
                    name, number, spec, env, code, max(1, spec.scale.min)
                )
            except StartError as exc:
                self.store.fail_version(name, number, str(exc))
                if previous is not None:
                    self.store.event(name, "deploy-failed", f"v{number} failed to start")
                kept = f"; v{previous.version} keeps serving" if previous else ""
                raise DeployError(f"{name} v{number} failed to start{kept}:\n{exc}") from exc
            function = self._activate(name, number, spec, env, code, instances)
        self.store.event(name, "deploy", f"v{number} active ({len(instances)} instances ready)")
        seconds = time.monotonic() - began
        log.info("deployed %s v%s in %.3fs", name, number, seconds)
        return {
            "name": name,
            "version": number,
            "urls": self.config.function_urls(name),
            "seconds": round(seconds, 3),
            "instances": [i.describe() for i in function.instances],
        }

    async def _start_many(
        self, name: str, number: int, spec: FunctionSpec, env: Env, code: Path, count: int
    ) -> list[Instance]:
        results = await asyncio.gather(
            *(self._spawn(name, number, spec, env, code) for _ in range(count)),
            return_exceptions=True,
        )
        started = [r for r in results if isinstance(r, Instance)]
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await asyncio.gather(*(self.supervisor.kill(i) for i in started))
            raise errors[0]
        return started

    def _spawn(self, name: str, number: int, spec: FunctionSpec, env: Env, code: Path) -> Any:
        return self.supervisor.start(
            name,
            number,
            env,
            code,
            spec.entrypoint,
            spec.env,
            spec.scale.concurrency,
            spec.limits.drain,
        )

    def _activate(
        self,
        name: str,
        number: int,
        spec: FunctionSpec,
        env: Env,
        code: Path,
        instances: list[Instance],
    ) -> Function:
        """Switch traffic to the new version at once, then drain the old one."""
        limits = RouteLimits(spec.limits.timeout, spec.limits.body, spec.scale.queue)
        route = self.gateway.set_route(name, limits, self._on_demand)
        function = Function(name, number, spec, env, code, route)
        previous = self.functions.get(name)
        self.functions[name] = function
        for instance in instances:
            self._route(function, instance)
        if previous is not None:
            if previous.retry is not None:
                previous.retry.cancel()
            for instance in previous.instances:
                self.background(self._retire(previous, instance))
            previous.instances.clear()
        self.store.activate(name, number)
        return function

    def _route(self, function: Function, instance: Instance) -> None:
        backend = Backend(instance.id, instance.socket, instance.concurrency)
        instance.backend = backend
        function.instances.append(instance)
        function.route.add(backend)

    async def _retire(self, function: Function, instance: Instance) -> None:
        """Not-ready, drain in-flight requests (with a deadline), then stop."""
        if instance.state == InstanceState.CRASHED or not instance.alive:
            return
        instance.state = InstanceState.DRAINING
        drain = function.spec.limits.drain
        if instance.backend is not None:
            await self.gateway.drain(function.name, instance.backend, drain)
        await self.supervisor.stop(instance, drain + 5.0)

    # restore after a restart

    async def restore(self) -> None:
        for name, active in self.store.functions():
            for row in self.store.versions(name):
                if row.status == "deploying":
                    self.store.fail_version(name, row.number, "interrupted by a daemon restart")
            current = self.store.version(name, active) if active is not None else None
            if current is None:
                continue
            row = current
            try:
                code = await asyncio.to_thread(self.bundles.path, row.bundle)
                env = self.envs.cached(row.env) or await self.envs.ensure(
                    _read(code / "requirements.txt"), functools.partial(log.info, f"{name}: %s")
                )
            except (OSError, BundleError, BuildError) as exc:
                log.error("cannot restore %s v%s: %s", name, active, exc)
                continue
            spec = FunctionSpec.from_dict(row.spec)
            limits = RouteLimits(spec.limits.timeout, spec.limits.body, spec.scale.queue)
            route = self.gateway.set_route(name, limits, self._on_demand)
            self.functions[name] = Function(name, row.number, spec, env, code, route)
            self.scale(self.functions[name])

    # scaling and healing

    def _on_demand(self, route: Route) -> None:
        function = self.functions.get(route.name)
        if function is not None:
            self.scale(function)

    def observe(self, function: Function) -> Observation:
        now = time.monotonic()
        ready = []
        for instance in function.instances:
            backend = instance.backend
            if instance.state == InstanceState.READY and backend is not None:
                idle = 0.0 if backend.in_flight else now - backend.idle_since
                ready.append(InstanceLoad(instance.id, backend.in_flight, idle))
        return Observation(tuple(ready), function.starting, len(function.route.waiters))

    def scale(self, function: Function) -> None:
        decision = decide(self.observe(function), function.spec.scale)
        if decision.start:
            wait = function.next_try - time.monotonic()
            if wait > 0:
                if function.retry is None:
                    function.retry = asyncio.get_running_loop().call_later(
                        wait, self._retry, function
                    )
                return
            for _ in range(decision.start):
                function.starting += 1
                self.background(self._start_one(function))
        for instance_id in decision.stop:
            instance = next(i for i in function.instances if i.id == instance_id)
            function.instances.remove(instance)
            self.store.event(function.name, "scale-down", f"{instance.id} idle; stopping it")
            self.background(self._retire(function, instance))

    def _retry(self, function: Function) -> None:
        function.retry = None
        if self.functions.get(function.name) is function:
            self.scale(function)

    async def _start_one(self, function: Function) -> None:
        try:
            instance = await self._spawn(
                function.name, function.version, function.spec, function.env, function.code
            )
        except StartError as exc:
            function.failures += 1
            function.last_error = str(exc)
            function.next_try = time.monotonic() + backoff(function.failures)
            self.store.event(
                function.name,
                "start-failed",
                f"v{function.version} failed to start (attempt {function.failures}):\n{exc}",
            )
            return
        finally:
            function.starting -= 1
        if self.functions.get(function.name) is not function:
            await self.supervisor.stop(instance, function.spec.limits.drain)
            return
        self._route(function, instance)
        self.store.event(function.name, "start", f"{instance.id} ready (pid {instance.pid})")
        self.scale(function)

    def instance_exited(self, instance: Instance) -> None:
        """Called by the supervisor for every exit; replaces instances that crashed."""
        function = self.functions.get(instance.function)
        code = instance.exit_code
        if function is None or instance not in function.instances:
            return
        function.instances.remove(instance)
        if instance.backend is not None:
            self.gateway.remove_backend(function.name, instance.backend)
        if instance.state != InstanceState.CRASHED:
            return
        lived = time.time() - instance.started
        function.failures = function.failures + 1 if lived < CRASH_WINDOW else 1
        function.next_try = time.monotonic() + backoff(function.failures)
        function.last_error = f"{instance.id} exited unexpectedly (exit code {code})"
        self.store.event(function.name, "crash", function.last_error)
        log.warning("%s; replacing it", function.last_error)
        self.scale(function)

    async def tick_forever(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            for function in list(self.functions.values()):
                self.scale(function)

    # remove and shut down

    async def remove(self, name: str) -> None:
        async with self._lock(name):
            function = self.functions.pop(name, None)
            if function is None and not self.store.exists(name):
                raise NotFound(name)
            if function is not None:
                if function.retry is not None:
                    function.retry.cancel()
                instances, function.instances = function.instances, []
                await asyncio.gather(*(self._retire(function, i) for i in instances))
            self.gateway.remove_route(name)
            self.store.remove(name)
            self.logs.forget(name)

    async def shutdown(self) -> None:
        """Drain and stop every instance, all functions at once."""
        retiring: list[Coroutine[Any, Any, None]] = []
        for function in self.functions.values():
            if function.retry is not None:
                function.retry.cancel()
            instances, function.instances = function.instances, []
            retiring.extend(self._retire(function, i) for i in instances)
        await asyncio.gather(*retiring)
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # views

    def list(self) -> list[dict[str, Any]]:
        return [self.describe(name, brief=True) for name, _ in self.store.functions()]

    def describe(self, name: str, brief: bool = False) -> dict[str, Any]:
        active = self.store.active_version(name)
        if active is None and not self.store.exists(name):
            raise NotFound(name)
        function = self.functions.get(name)
        info: dict[str, Any] = {
            "name": name,
            "version": active,
            "urls": self.config.function_urls(name),
            "instances": [i.describe() for i in function.instances] if function else [],
            "starting": function.starting if function else 0,
            "queued": len(function.route.waiters) if function else 0,
        }
        if brief:
            return info
        info["spec"] = function.spec.to_dict() if function else None
        info["env"] = function.env.key if function else None
        info["last_error"] = function.last_error if function else None
        retry_in = function.next_try - time.monotonic() if function else 0.0
        info["next_try_in"] = round(retry_in, 3) if retry_in > 0 else None
        info["versions"] = [
            {
                "number": v.number,
                "status": v.status,
                "created": v.created,
                "bundle": v.bundle,
                "error": v.error,
            }
            for v in self.store.versions(name)
        ]
        return info

    # helpers

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None
