"""The control loop for functions: deploy, traffic, restore, scale, heal, remove.

This is where the pieces meet: the store says what should run, the builder prepares it,
the supervisor runs it, the gateway routes to it, the autoscaler decides how many.

Every change of what serves goes through one operation, `_serve(name, weights)`: start
the versions that are not running yet, wait until they are ready, switch the gateway's
pools in one step, then drain what left. Deploy, rollback and traffic splits are that
operation with different weights; a roll (after a secret changed) is that operation with
the same weights, every version started afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hearth.autoscaler import InstanceLoad, Observation, backoff, decide
from hearth.builder.bundle import BundleError, bundle_sha, read_small_text
from hearth.builder.envs import BuildError, Env, EnvBuilder, env_key
from hearth.config import DaemonConfig
from hearth.gateway import Backend, Gateway, Pool, RouteLimits
from hearth.gateway.access import Access
from hearth.sandbox.cgroups import Budget
from hearth.sandbox.disks import DiskError
from hearth.spec import MAX_ENV_KEYS, FunctionSpec, SpecError, check_name, parse_spec
from hearth.store import BundleStore, Store, Vault, VaultError
from hearth.supervisor import Instance, InstanceState, LogBook, StartError, Supervisor
from hearth.supervisor.supervisor import describe_exit

log = logging.getLogger("hearth")
Progress = Callable[[str], None]
CRASH_WINDOW = 30.0  # an instance that dies younger than this counts towards a crash loop


class DeployError(Exception):
    """A change was refused or failed; what served before keeps serving."""


class NotFound(KeyError):
    """No function by that name."""


@dataclass(eq=False)
class Release:
    """One version of a function that serves, or is about to."""

    number: int
    spec: FunctionSpec
    env: Env
    code: Path
    pool: Pool
    # [env] with the secrets over it, as they were when this release was made: all its
    # instances see the same values; a changed secret makes new releases (a roll).
    user_env: dict[str, str] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)
    starting: int = 0


@dataclass(eq=False)
class Function:
    name: str
    releases: dict[int, Release] = field(default_factory=dict)
    failures: int = 0
    next_try: float = 0.0
    last_error: str | None = None
    retry: asyncio.TimerHandle | None = None
    access: Access = field(init=False)  # the gateway's route holds this same object

    def __post_init__(self) -> None:
        self.access = Access(self.name)

    @property
    def traffic(self) -> dict[int, int]:
        return {n: r.pool.weight for n, r in self.releases.items()}

    @property
    def instances(self) -> list[Instance]:
        return [i for r in self.releases.values() for i in r.instances]


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
        vault: Vault | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.bundles = bundles
        self.envs = envs
        self.supervisor = supervisor
        self.gateway = gateway
        self.logs = logs
        self.vault = vault
        self.functions: dict[str, Function] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # Bundles and environments a deploy is preparing, before a version row refers to
        # them: garbage collection leaves them alone.
        self._pinned: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"<Functions {sorted(self.functions)}>"

    # changing what serves

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
        sha = await asyncio.to_thread(bundle_sha, data)
        async with contextlib.AsyncExitStack() as held:
            pins = held.enter_context(contextlib.ExitStack())
            pins.enter_context(self._pin(sha))
            spec, env, code = await self._prepare(name, sha, data, progress, pins)
            await held.enter_async_context(self._lock(name))
            number = self.store.new_version(name, sha, env.key, spec.to_dict())
            pins.close()  # the version row refers to the bundle and environment from here
            progress(f"starting {name} v{number}")
            before = self.functions.get(name)
            try:
                await self._serve(name, {number: 100}, fresh={number: (spec, env, code)})
            except StartError as exc:
                self.store.fail_version(name, number, str(exc))
                serving = _describe_traffic(before.traffic) if before else None
                if serving:
                    self.store.event(name, "deploy-failed", f"v{number} failed to start")
                kept = f"; {serving} keeps serving" if serving else ""
                raise DeployError(f"{name} v{number} failed to start{kept}:\n{exc}") from exc
        self.store.event(name, "deploy", f"v{number} serving")
        seconds = time.monotonic() - began
        log.info("deployed %s v%s in %.3fs", name, number, seconds)
        return self._result(name, number, seconds)

    async def _prepare(
        self, name: str, sha: str, data: bytes, progress: Progress, pins: contextlib.ExitStack
    ) -> tuple[FunctionSpec, Env, Path]:
        """Unpack the bundle, read its settings, ensure its environment; or a DeployError.

        Nothing that serves changes here, so any failure leaves the previous version serving.
        """
        try:
            _, code = await self.bundles.put(data, self.max_unpacked, sha)
            spec = _spec(code, name)
            if self.supervisor.planner.disks is not None:
                self.supervisor.planner.disks.check(name, spec.limits.disk)
            requirements = read_small_text(code / "requirements.txt")
            pins.enter_context(self._pin(env_key(requirements)))
            env = await self.envs.ensure(requirements, progress)
        except (BundleError, SpecError, BuildError, DiskError) as exc:
            raise DeployError(str(exc)) from exc
        except UnicodeError as exc:
            raise DeployError(f"the bundle holds text that is not UTF-8: {exc}") from exc
        except OSError as exc:
            raise DeployError(f"the bundle could not be prepared: {exc}") from exc
        return spec, env, code

    async def set_traffic(self, name: str, weights: dict[int, int]) -> dict[str, Any]:
        """Serve these versions with these shares; e.g. {3: 90, 4: 10} or {3: 100}."""
        began = time.monotonic()
        if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise DeployError("traffic needs at least one version with a share above 0")
        weights = {v: w for v, w in weights.items() if w > 0}
        async with self._lock(name):
            if not self.store.exists(name):
                raise NotFound(name)
            for number in weights:
                row = self.store.version(name, number)
                if row is None:
                    raise DeployError(f"{name} has no version {number}")
                if row.status == "failed":
                    raise DeployError(f"{name} v{number} failed to start before; deploy again")
            previous = self.store.traffic(name)
            try:
                await self._serve(name, weights)
            except StartError as exc:
                raise DeployError(
                    f"{name}: could not start the versions asked for; "
                    f"{_describe_traffic(previous)} keeps serving:\n{exc}"
                ) from exc
        self.store.event(
            name, "traffic", f"{_describe_traffic(previous)} -> {_describe_traffic(weights)}"
        )
        return self._result(name, max(weights, key=weights.__getitem__), time.monotonic() - began)

    async def rollback(self, name: str, to: int | None = None) -> dict[str, Any]:
        """Back to version `to`, or to the newest good version before the one serving."""
        if to is None:
            current = self.store.active_version(name)
            if current is None:
                raise NotFound(name)
            older = [
                v.number
                for v in self.store.versions(name)
                if v.number < current and v.status != "failed"
            ]
            if not older:
                raise DeployError(f"{name} has no version before v{current} to roll back to")
            to = max(older)
        result = await self.set_traffic(name, {to: 100})
        self.store.event(name, "rollback", f"rolled back to v{to}")
        return result

    async def _serve(
        self,
        name: str,
        weights: dict[int, int],
        fresh: dict[int, tuple[FunctionSpec, Env, Path]] | None = None,
        restart: bool = False,
    ) -> None:
        """Start what is missing, switch the pools at once, drain what left. Caller locks.

        With `restart`, the serving versions count as missing too: each is started afresh
        (as many instances as it runs now), and the old instances drain.
        """
        function = self.functions.get(name) or self._new_function(name)
        releases: dict[int, Release] = {}
        started: list[Release] = []
        try:
            for number in weights:
                old = function.releases.get(number)
                release = None if restart else old
                if release is None:
                    prepared = (fresh or {}).get(number)
                    if prepared is None:
                        prepared = (
                            (old.spec, old.env, old.code)
                            if old is not None
                            else await self._load(name, number)
                        )
                    release = self._release(name, number, *prepared)
                    started.append(release)
                    scale = release.spec.scale
                    count = max(1, scale.min, len(old.instances) if old else 0)
                    await self._start_many(name, release, min(count, scale.max))
                releases[number] = release
        except (StartError, BuildError, BundleError, OSError) as exc:
            for release in started:
                await asyncio.gather(*(self.supervisor.kill(i) for i in release.instances))
                self.supervisor.stop_zygote(name, release.number)
            raise exc if isinstance(exc, StartError) else StartError(str(exc)) from exc
        for number, release in releases.items():
            release.pool.weight = weights[number]
        # From here to the end nothing awaits: the switch is atomic for every request.
        self.functions[name] = function
        self._route_to(function, releases)
        for number, release in function.releases.items():
            if releases.get(number) is not release:
                self._retire_all(release)
        function.releases = releases
        self.store.set_traffic(name, weights)

    async def _load(self, name: str, number: int) -> tuple[FunctionSpec, Env, Path]:
        row = self.store.version(name, number)
        if row is None:
            raise StartError(f"{name} has no version {number}")
        code = await self.bundles.path(row.bundle, self.max_unpacked)
        env = self.envs.cached(row.env) or await self.envs.ensure(
            read_small_text(code / "requirements.txt"), functools.partial(log.info, f"{name}: %s")
        )
        return FunctionSpec.from_dict(row.spec), env, code

    def _release(self, name: str, number: int, spec: FunctionSpec, env: Env, code: Path) -> Release:
        limits = RouteLimits(spec.limits.timeout, spec.limits.body, spec.scale.queue)
        pool = Pool(name, number, limits, on_demand=self._on_demand, on_recycle=self._on_recycle)
        return Release(number, spec, env, code, pool, {**spec.env, **self._secrets(name)})

    def _new_function(self, name: str) -> Function:
        function = Function(name)
        function.access.keys = self.store.key_hashes(name)
        return function

    def _route_to(self, function: Function, releases: dict[int, Release]) -> None:
        """Give the gateway these pools and the function's access, in one step.

        Versions that disagree are served the strict way: private if any is, at the
        lowest rate any has.
        """
        route = self.gateway.set_pools(function.name, [r.pool for r in releases.values()])
        specs = [r.spec for r in releases.values()]
        rates = [s.limits.rate for s in specs if s.limits.rate is not None]
        function.access.configure(
            public=all(s.access.public for s in specs), rate=min(rates) if rates else None
        )
        route.access = function.access

    async def _start_many(self, name: str, release: Release, count: int) -> None:
        results = await asyncio.gather(
            *(self._spawn(name, release) for _ in range(count)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        for instance in (r for r in results if isinstance(r, Instance)):
            self._route(release, instance)
        if errors:
            raise errors[0]

    def _spawn(self, name: str, release: Release) -> Coroutine[Any, Any, Instance]:
        spec = release.spec
        return self.supervisor.start(
            name,
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
        )

    def _route(self, release: Release, instance: Instance) -> None:
        backend = Backend(instance.id, instance.socket, instance.concurrency)
        instance.backend = backend
        release.instances.append(instance)
        release.pool.add(backend)

    def _retire_all(self, release: Release) -> None:
        instances, release.instances = release.instances, []
        self.background(self._retire_version(release, instances))

    async def _retire_version(self, release: Release, instances: list[Instance]) -> None:
        """Drain and stop a version's instances, then its zygote (which reports their
        exits), unless the version has come back to serve meanwhile."""
        await asyncio.gather(*(self._retire(release, i) for i in instances))
        name = release.pool.name
        function = self.functions.get(name)
        if function is None or release.number not in function.releases:
            self.supervisor.stop_zygote(name, release.number)

    async def _retire(self, release: Release, instance: Instance) -> None:
        """Not-ready, drain in-flight requests (with a deadline), then stop."""
        if instance.state == InstanceState.CRASHED or not instance.alive:
            return
        instance.state = InstanceState.DRAINING
        drain = release.spec.limits.drain
        if instance.backend is not None:
            await self.gateway.drain(release.pool, instance.backend, drain)
        await self.supervisor.stop(instance, drain + 5.0)

    def _result(self, name: str, number: int, seconds: float) -> dict[str, Any]:
        function = self.functions[name]
        return {
            "name": name,
            "version": number,
            "traffic": {str(k): v for k, v in function.traffic.items()},
            "urls": self.config.function_urls(name),
            "seconds": round(seconds, 3),
            "instances": [i.describe() for i in function.instances],
        }

    async def roll(self, name: str, reason: str) -> bool:
        """Replace every serving instance with a fresh one (zero downtime), e.g. to take
        changed secrets; False if nothing serves."""
        async with self._lock(name):
            function = self.functions.get(name)
            if function is None or not function.releases:
                return False
            traffic = function.traffic
            try:
                await self._serve(name, traffic, restart=True)
            except StartError as exc:
                raise DeployError(
                    f"{name}: {reason}, but its new instances failed to start; the running "
                    f"ones keep serving as they were:\n{exc}"
                ) from exc
        self.store.event(name, "secrets", f"{reason}: rolled instances")
        return True

    # keys of private functions

    def create_key(self, name: str) -> dict[str, Any]:
        key = secrets.token_urlsafe(32)
        row = self.store.add_key(name, key)
        self._keys_changed(name)
        self.store.event(name, "keys", f"key {row['id']} created")
        return {**row, "function": name, "key": key}

    def revoke_key(self, name: str, key_id: str) -> bool:
        if not self.store.revoke_key(name, key_id):
            return False
        self._keys_changed(name)
        self.store.event(name, "keys", f"key {key_id} revoked")
        return True

    def _keys_changed(self, name: str) -> None:
        function = self.functions.get(name)
        if function is not None:
            function.access.keys = self.store.key_hashes(name)

    # secrets

    async def set_secret(self, name: str, key: str, value: str) -> dict[str, Any]:
        """Store a secret (sealed) and roll the function's instances if it changed."""
        vault = self._vault()
        names = {row["name"] for row in self.store.secret_names(name)}
        if key not in names and len(names) >= MAX_ENV_KEYS:
            raise DeployError(f"{name} has {len(names)} secrets, the most allowed; remove one")
        try:
            before = self._secrets(name).get(key)
        except StartError:
            before = None  # what does not open is replaced
        nonce, sealed = vault.seal(name, key, value)
        updated = self.store.put_secret(name, key, nonce, sealed)
        rolled = before != value and await self.roll(name, "secrets changed")
        return {"function": name, "name": key, "updated": updated, "rolled": rolled}

    async def remove_secret(self, name: str, key: str) -> dict[str, Any] | None:
        if not self.store.delete_secret(name, key):
            return None
        rolled = await self.roll(name, "secrets changed")
        return {"function": name, "removed": key, "rolled": rolled}

    def _secrets(self, name: str) -> dict[str, str]:
        """The function's secrets, opened; a StartError if they do not open."""
        rows = self.store.sealed_secrets(name)
        if not rows:
            return {}
        try:
            vault = self._vault()
            return {key: vault.open(name, key, nonce, sealed) for _, key, nonce, sealed in rows}
        except (DeployError, VaultError) as exc:
            raise StartError(str(exc)) from exc

    def _vault(self) -> Vault:
        if self.vault is None:
            raise DeployError("this daemon was started without a secret key; secrets are off")
        return self.vault

    # restore after a restart

    async def restore(self) -> None:
        await self.collect_garbage()  # what a removal or a crash left behind
        for name, _active in self.store.functions():
            for row in self.store.versions(name):
                if row.status == "deploying":
                    self.store.fail_version(name, row.number, "interrupted by a daemon restart")
            weights = self.store.traffic(name)
            if not weights:
                continue
            function = self._new_function(name)
            for number, weight in weights.items():
                try:
                    release = self._release(name, number, *await self._load(name, number))
                except (OSError, BundleError, BuildError, StartError) as exc:
                    log.error("cannot restore %s v%s: %s", name, number, exc)
                    continue
                release.pool.weight = weight
                function.releases[number] = release
            if not function.releases:
                continue
            self.functions[name] = function
            self._route_to(function, function.releases)
            self.scale(function)

    # scaling and healing

    def _on_demand(self, pool: Pool) -> None:
        function = self.functions.get(pool.name)
        if function is not None and pool.version in function.releases:
            self.scale(function)

    def _on_recycle(self, pool: Pool, backend: Backend, reason: str) -> None:
        function = self.functions.get(pool.name)
        release = function.releases.get(pool.version) if function else None
        if function is None or release is None:
            return
        instance = next((i for i in release.instances if i.backend is backend), None)
        if instance is None:
            return
        release.instances.remove(instance)
        self.store.event(function.name, "recycle", f"{instance.id} {reason}; replacing it")
        self.background(self._retire(release, instance))
        self._scale(function, release)

    def _liveness(self, instance: Instance) -> float:
        function = self.functions.get(instance.function)
        release = function.releases.get(instance.version) if function else None
        return release.spec.limits.liveness if release else 10.0

    def observe(self, release: Release) -> Observation:
        now = time.monotonic()
        ready = []
        for instance in release.instances:
            backend = instance.backend
            if instance.state == InstanceState.READY and backend is not None:
                idle = 0.0 if backend.in_flight else now - backend.idle_since
                ready.append(InstanceLoad(instance.id, backend.in_flight, idle))
        return Observation(tuple(ready), release.starting, len(release.pool.waiters))

    def scale(self, function: Function) -> None:
        for release in list(function.releases.values()):
            self._scale(function, release)

    def _scale(self, function: Function, release: Release) -> None:
        decision = decide(self.observe(release), release.spec.scale)
        if decision.start:
            wait = function.next_try - time.monotonic()
            if wait > 0:
                if function.retry is None:
                    function.retry = asyncio.get_running_loop().call_later(
                        wait, self._retry, function
                    )
                return
            for _ in range(decision.start):
                release.starting += 1
                self.background(self._start_one(function, release))
        for instance_id in decision.stop:
            instance = next(i for i in release.instances if i.id == instance_id)
            release.instances.remove(instance)
            self.store.event(function.name, "scale-down", f"{instance.id} idle; stopping it")
            self.background(self._retire(release, instance))

    def _retry(self, function: Function) -> None:
        function.retry = None
        if self.functions.get(function.name) is function:
            self.scale(function)

    async def _start_one(self, function: Function, release: Release) -> None:
        try:
            instance = await self._spawn(function.name, release)
        except StartError as exc:
            function.failures += 1
            function.last_error = str(exc)
            function.next_try = time.monotonic() + backoff(function.failures)
            self.store.event(
                function.name,
                "start-failed",
                f"v{release.number} failed to start (attempt {function.failures}, next in "
                f"{backoff(function.failures):.1f}s):\n{exc}",
            )
            return
        finally:
            release.starting -= 1
        if function.releases.get(release.number) is not release:
            await self.supervisor.stop(instance, release.spec.limits.drain)
            return
        self._route(release, instance)
        self.store.event(function.name, "start", f"{instance.id} ready (pid {instance.pid})")
        self._scale(function, release)

    def instance_exited(self, instance: Instance) -> None:
        """Called by the supervisor for every exit; replaces instances that crashed."""
        if instance.state != InstanceState.CRASHED and self.store.exists(instance.function):
            self.store.event(
                instance.function, "exit", f"{instance.id} stopped ({_stopped(instance.exit_code)})"
            )
        function = self.functions.get(instance.function)
        release = function.releases.get(instance.version) if function else None
        if function is None or release is None or instance not in release.instances:
            return
        release.instances.remove(instance)
        if instance.backend is not None:
            self.gateway.remove_backend(release.pool, instance.backend)
        if instance.state != InstanceState.CRASHED:
            return
        lived = time.time() - instance.started
        function.failures = function.failures + 1 if lived < CRASH_WINDOW else 1
        function.next_try = time.monotonic() + backoff(function.failures)
        if instance.kill_reason:
            function.last_error = f"{instance.id} killed: {instance.kill_reason}"
            self.store.event(function.name, "killed", function.last_error)
        else:
            code = instance.exit_code
            function.last_error = f"{instance.id} exited unexpectedly (exit code {code})"
            self.store.event(function.name, "crash", function.last_error)
        log.warning("%s; replacing it", function.last_error)
        self._scale(function, release)

    async def tick_forever(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            self.supervisor.check(self._liveness)
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
                retiring: list[Coroutine[Any, Any, None]] = []
                for release in function.releases.values():
                    instances, release.instances = release.instances, []
                    retiring.extend(self._retire(release, i) for i in instances)
                await asyncio.gather(*retiring)
                for number in function.releases:
                    self.supervisor.stop_zygote(name, number)
            self.gateway.remove_route(name)
            self.store.remove(name)
            self.logs.forget(name)
            self.supervisor.planner.forget(name)
        await self.collect_garbage()

    async def collect_garbage(self) -> None:
        """Remove code, archives and environments that no version refers to any more.

        `keep` is computed right before each collection, which renames what it removes
        before it first awaits: a deploy that pins its bundle or environment later than
        that finds it gone and unpacks or builds it again.
        """
        try:
            keep_bundles, _ = self._keep()
            freed = await self.bundles.collect(keep_bundles)
            _, keep_envs = self._keep()
            envs, env_bytes = await self.envs.collect(keep_envs)
        except OSError as exc:
            log.warning("could not remove unused code or environments: %s", exc)
            return
        if freed.code or freed.archives or freed.leftovers or envs:
            total = freed.bytes + env_bytes
            size = f"{total / 1e6:.1f} MB" if total >= 100_000 else f"{total / 1e3:.1f} kB"
            log.info(
                "freed %s: %d code folders, %d archives, %d environments%s, "
                "%d leftovers of interrupted writes",
                size,
                len(freed.code),
                len(freed.archives),
                len(envs),
                f" ({', '.join(envs)})" if envs else "",
                freed.leftovers,
            )

    async def shutdown(self) -> None:
        """Drain and stop every instance, all functions at once."""
        retiring: list[Coroutine[Any, Any, None]] = []
        for function in self.functions.values():
            if function.retry is not None:
                function.retry.cancel()
            for release in function.releases.values():
                instances, release.instances = release.instances, []
                retiring.extend(self._retire(release, i) for i in instances)
        await asyncio.gather(*retiring)
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # views

    def overview(self, shown: Callable[[str], bool] = lambda name: True) -> list[dict[str, Any]]:
        return [
            self.describe(name, brief=True) for name, _ in self.store.functions() if shown(name)
        ]

    def describe(self, name: str, brief: bool = False) -> dict[str, Any]:
        active = self.store.active_version(name)
        if active is None and not self.store.exists(name):
            raise NotFound(name)
        function = self.functions.get(name)
        releases = function.releases if function else {}
        traffic = self.store.traffic(name)
        info: dict[str, Any] = {
            "name": name,
            "version": active,
            "traffic": {str(k): v for k, v in traffic.items()},
            "urls": self.config.function_urls(name),
            "instances": self._instances(name),
            "starting": sum(r.starting for r in releases.values()),
            "queued": sum(len(r.pool.waiters) for r in releases.values()),
        }
        if brief:
            return info
        main = releases.get(active) if active is not None else None
        info["spec"] = main.spec.to_dict() if main else None
        info["env"] = main.env.key if main else None
        info["last_error"] = function.last_error if function else None
        retry_in = function.next_try - time.monotonic() if function else 0.0
        info["next_try_in"] = round(retry_in, 3) if retry_in > 0 else None
        info["versions"] = self.versions(name)
        return info

    def _instances(self, name: str) -> list[dict[str, Any]]:
        """Every live instance of the function: starting, ready or draining."""
        live = [i for i in self.supervisor.instances.values() if i.function == name]
        return [i.describe() for i in sorted(live, key=lambda i: i.started)]

    def versions(self, name: str) -> list[dict[str, Any]]:
        if not self.store.exists(name):
            raise NotFound(name)
        traffic = self.store.traffic(name)
        total = sum(traffic.values()) or 1
        rows = []
        for v in self.store.versions(name):
            share = traffic.get(v.number, 0)
            status = "serving" if share else ("failed" if v.status == "failed" else v.status)
            rows.append(
                {
                    "number": v.number,
                    "status": status,
                    "traffic": round(100 * share / total, 1),
                    "created": v.created,
                    "bundle": v.bundle,
                    "error": v.error,
                }
            )
        return rows

    # helpers

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def _keep(self) -> tuple[set[str], set[str]]:
        """The bundles and environments in use: referenced by a version, or pinned."""
        bundles, envs = self.store.referenced()
        pinned = set(self._pinned)
        return bundles | pinned, envs | pinned

    @contextlib.contextmanager
    def _pin(self, key: str) -> Iterator[None]:
        self._pinned[key] += 1
        try:
            yield
        finally:
            self._pinned[key] -= 1
            if self._pinned[key] <= 0:
                del self._pinned[key]

    @property
    def max_unpacked(self) -> int:
        """The most a bundle may unpack to."""
        return 4 * self.config.max_bundle

    def background(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def budget(spec: FunctionSpec) -> Budget:
    """What all of a function's processes may use together: `max` instances of `memory`
    each plus one for its zygote; the threads its instances need plus `processes`."""
    scale, limits = spec.scale, spec.limits
    return Budget(
        memory=limits.memory * (scale.max + 1),
        tasks=limits.processes + (scale.max + 1) * (scale.concurrency + 16),
        files=limits.files,
        disk=limits.disk,
    )


def _stopped(code: int | None) -> str:
    """How an instance we stopped ended: uvicorn re-raises the SIGTERM it drained on."""
    return "drained, then ended by SIGTERM" if code == -15 else describe_exit(code)


def _describe_traffic(weights: dict[int, int]) -> str:
    if not weights:
        return "nothing"
    if len(weights) == 1:
        return f"v{next(iter(weights))}"
    total = sum(weights.values())
    return " ".join(f"v{v}={round(100 * w / total)}%" for v, w in sorted(weights.items()))


def _spec(code: Path, name: str) -> FunctionSpec:
    """The function's settings from the hearth.toml in its code (the name given wins)."""
    text = read_small_text(code / "hearth.toml")
    try:
        return replace(parse_spec(text, name), name=name)
    except SpecError:
        raise
    except (ValueError, TypeError) as exc:  # a value of the wrong type that slipped through
        raise SpecError(f"hearth.toml is not valid: {exc}") from exc
