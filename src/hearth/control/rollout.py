"""Changing what serves: deploy, traffic splits, rollback, roll, restore, remove.

Every change goes through one operation, `serve(name, weights)`: start the versions that
are not running yet, wait until they are ready, switch the gateway's pools in one step,
then drain what left. Deploy, rollback and traffic splits are that operation with
different weights; a roll (after a secret changed) is that operation with the same
weights, every version started afresh. A failure anywhere before the switch leaves what
served before serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from hearth.builder.bundle import BundleError, bundle_sha, read_small_text
from hearth.builder.envs import BuildError, Env, EnvBuilder, env_key
from hearth.config import DaemonConfig
from hearth.control.errors import DeployError, NotFound
from hearth.control.inbox import Demand, Recycle
from hearth.control.model import Function, Release, budget
from hearth.control.ports import KeyValue
from hearth.control.reconciler import Reconciler
from hearth.control.secrets import Secrets
from hearth.gateway import Backend, Pool, RouteLimits
from hearth.kv import MISSING, KvError
from hearth.sandbox.disks import DiskError, Disks
from hearth.spec import (
    LIVE_SCALE,
    FunctionSpec,
    Scale,
    SpecError,
    check_name,
    parse_spec,
    rescale,
)
from hearth.store import BundleStore, Store
from hearth.supervisor import LogBook, StartError

log = logging.getLogger("hearth")
Progress = Callable[[str], None]


class Rollouts:
    def __init__(
        self,
        config: DaemonConfig,
        store: Store,
        bundles: BundleStore,
        envs: EnvBuilder,
        reconciler: Reconciler,
        secrets: Secrets,
        logs: LogBook,
        forget: Callable[[str, bool], Path | None] = lambda name, purge: None,
        disks: Disks | None = None,
        kv: KeyValue | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.bundles = bundles
        self.envs = envs
        self.reconciler = reconciler
        self.secrets = secrets
        self.logs = logs
        self.forget = forget  # the sandbox's part of a removed function (its data: kept?)
        self.disks = disks
        self.kv = kv
        self._locks: dict[str, asyncio.Lock] = {}
        # Bundles and environments a deploy is preparing, before a version row refers to
        # them: garbage collection leaves them alone.
        self._pinned: Counter[str] = Counter()

    @property
    def functions(self) -> dict[str, Function]:
        return self.reconciler.functions

    # deploy, traffic, rollback

    async def deploy(self, name: str, data: bytes, progress: Progress) -> dict[str, Any]:
        began = time.monotonic()
        try:
            check_name(name)
        except SpecError as exc:
            raise DeployError(str(exc)) from exc
        try:
            result = await self._deploy(name, data, progress, began)
        except DeployError:
            self.reconciler.tally.deployed(name, False, time.monotonic() - began)
            raise
        self.reconciler.tally.deployed(name, True, time.monotonic() - began)
        return result

    async def _deploy(
        self, name: str, data: bytes, progress: Progress, began: float
    ) -> dict[str, Any]:
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
            await held.enter_async_context(self.lock(name))
            number = self.store.new_version(name, sha, env.key, spec.to_dict())
            pins.close()  # the version row refers to the bundle and environment from here
            progress(f"starting {name} v{number}")
            before = self.functions.get(name)
            try:
                await self.serve(name, {number: 100}, fresh={number: (spec, env, code)})
            except StartError as exc:
                self.store.fail_version(name, number, str(exc))
                serving = describe_traffic(before.traffic) if before else None
                if serving:
                    self.store.event(name, "deploy-failed", f"v{number} failed to start")
                kept = f"; {serving} keeps serving" if serving else ""
                raise DeployError(f"{name} v{number} failed to start{kept}:\n{exc}") from exc
        self.store.event(name, "deploy", f"v{number} serving")
        seconds = time.monotonic() - began
        log.info("deployed %s v%s in %.3fs", name, number, seconds)
        return self.result(name, number, seconds)

    async def _prepare(
        self, name: str, sha: str, data: bytes, progress: Progress, pins: contextlib.ExitStack
    ) -> tuple[FunctionSpec, Env, Path]:
        """Unpack the bundle, read its settings, ensure its environment; or a DeployError.

        Nothing that serves changes here, so any failure leaves the previous version serving.
        """
        try:
            _, code = await self.bundles.put(data, self.max_unpacked, sha)
            spec = _spec(code, name)
            if self.disks is not None:
                self.disks.check(name, spec.limits.disk)
            if spec.kv.enabled and (self.kv is None or not self.kv.available):
                raise DeployError(MISSING)
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
        async with self.lock(name):
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
                await self.serve(name, weights)
            except StartError as exc:
                raise DeployError(
                    f"{name}: could not start the versions asked for; "
                    f"{describe_traffic(previous)} keeps serving:\n{exc}"
                ) from exc
        self.store.event(
            name, "traffic", f"{describe_traffic(previous)} -> {describe_traffic(weights)}"
        )
        return self.result(name, max(weights, key=weights.__getitem__), time.monotonic() - began)

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

    async def roll(self, name: str, reason: str) -> bool:
        """Replace every serving instance with a fresh one (zero downtime), e.g. to take
        changed secrets; False if nothing serves."""
        async with self.lock(name):
            function = self.functions.get(name)
            if function is None or not function.releases:
                return False
            try:
                await self.serve(name, function.traffic, restart=True)
            except StartError as exc:
                raise DeployError(
                    f"{name}: {reason}, but its new instances failed to start; the running "
                    f"ones keep serving as they were:\n{exc}"
                ) from exc
        self.store.event(name, "secrets", f"{reason}: rolled instances")
        return True

    async def rescale(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change the [scale] settings of the serving versions live, without a deploy;
        kept across restarts and rollbacks to them (a new deploy brings its own)."""
        async with self.lock(name):
            function = self.functions.get(name)
            if function is None or not function.releases:
                if not self.store.exists(name):
                    raise NotFound(name)
                raise DeployError(f"{name} has no serving version to scale; deploy it first")
            try:
                scales = {n: rescale(r.spec.scale, changes) for n, r in function.releases.items()}
            except SpecError as exc:
                raise DeployError(str(exc)) from exc
            before = {n: r.spec.scale for n, r in function.releases.items()}
            for number, release in function.releases.items():
                release.spec = replace(release.spec, scale=scales[number])
                limits = release.pool.limits
                release.pool.limits = replace(limits, queue=scales[number].queue)
            self.store.set_specs(name, {n: r.spec.to_dict() for n, r in function.releases.items()})
            widest = max(function.releases.values(), key=lambda r: r.spec.scale.max)
            self.reconciler.runner.set_budget(name, budget(widest.spec))
            said = _changes(before[widest.number], widest.spec.scale)
            self.store.event(name, "scale-settings", said or "unchanged")
            self.reconciler.scale(function)
        return {
            "name": name,
            "changed": said,
            "scale": {str(n): asdict(r.spec.scale) for n, r in function.releases.items()},
        }

    # the one operation

    async def serve(
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
        reconciler = self.reconciler
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
                    release = self.release(name, number, *prepared)
                    started.append(release)
                    await self._kv_for(release)
                    scale = release.spec.scale
                    count = max(1, scale.min, len(old.replicas) if old else 0)
                    await reconciler.start_many(release, min(count, scale.max))
                releases[number] = release
        except (StartError, BuildError, BundleError, KvError, OSError) as exc:
            for release in started:
                await reconciler.kill_all(release)
                reconciler.runner.stop_zygote(name, release.number)
            raise exc if isinstance(exc, StartError) else StartError(str(exc)) from exc
        for number, release in releases.items():
            release.pool.weight = weights[number]
        # From here to the end nothing awaits: the switch is atomic for every request.
        self.functions[name] = function
        self._route_to(function, releases)
        for number, release in function.releases.items():
            if releases.get(number) is not release:
                reconciler.retire_all(release)
        function.releases = releases
        self.store.set_traffic(name, weights)
        if self.kv is not None and not any(r.spec.kv.enabled for r in releases.values()):
            await self.kv.stop(name)  # no serving version asks for it (its files stay)

    async def _kv_for(self, release: Release) -> None:
        """The function's KV server running, if this release asks for one."""
        if release.spec.kv.enabled:
            if self.kv is None:
                raise KvError(MISSING)
            await self.kv.ensure(release.function, release.spec.kv.memory)

    async def _load(self, name: str, number: int) -> tuple[FunctionSpec, Env, Path]:
        row = self.store.version(name, number)
        if row is None:
            raise StartError(f"{name} has no version {number}")
        code = await self.bundles.path(row.bundle, self.max_unpacked)
        env = self.envs.cached(row.env) or await self.envs.ensure(
            read_small_text(code / "requirements.txt"), functools.partial(log.info, f"{name}: %s")
        )
        return FunctionSpec.from_dict(row.spec), env, code

    def release(self, name: str, number: int, spec: FunctionSpec, env: Env, code: Path) -> Release:
        """A release whose pool tells the reconciler of queued requests and broken
        instances, by posting to its inbox."""
        inbox = self.reconciler.inbox

        def on_demand(pool: Pool) -> None:
            inbox.post(Demand(pool.name, pool.version))

        def on_recycle(pool: Pool, backend: Backend, reason: str) -> None:
            inbox.post(Recycle(pool.name, pool.version, backend.id, reason))

        limits = RouteLimits(
            spec.limits.timeout,
            spec.limits.body,
            spec.scale.queue,
            spec.limits.websockets,
            spec.limits.websocket_idle,
        )
        pool = Pool(name, number, limits, on_demand=on_demand, on_recycle=on_recycle)
        user_env = {**spec.env, **self.secrets.opened(name)}
        if spec.kv.enabled and self.kv is not None:
            user_env["REDIS_URL"] = self.kv.url(name)  # the platform's store wins
        return Release(name, number, spec, env, code, pool, user_env)

    def _new_function(self, name: str) -> Function:
        function = Function(name)
        function.access.keys = self.store.key_hashes(name)
        return function

    def _route_to(self, function: Function, releases: dict[int, Release]) -> None:
        """Give the gateway these pools and the function's access, in one step.

        Versions that disagree are served the strict way: private if any is, at the
        lowest rate any has.
        """
        route = self.reconciler.router.set_pools(function.name, [r.pool for r in releases.values()])
        specs = [r.spec for r in releases.values()]
        rates = [s.limits.rate for s in specs if s.limits.rate is not None]
        function.access.configure(
            public=all(s.access.public for s in specs), rate=min(rates) if rates else None
        )
        route.access = function.access

    def result(self, name: str, number: int, seconds: float) -> dict[str, Any]:
        function = self.functions[name]
        return {
            "name": name,
            "version": number,
            "traffic": {str(k): v for k, v in function.traffic.items()},
            "urls": self.config.function_urls(name),
            "seconds": round(seconds, 3),
            "instances": [r.describe() for r in function.replicas],
        }

    # restore after a restart, remove

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
                    release = self.release(name, number, *await self._load(name, number))
                except (OSError, BundleError, BuildError, StartError) as exc:
                    log.error("cannot restore %s v%s: %s", name, number, exc)
                    continue
                release.pool.weight = weight
                function.releases[number] = release
            if not function.releases:
                continue
            try:
                for release in function.releases.values():
                    await self._kv_for(release)
            except (KvError, OSError) as exc:
                log.error("cannot start the KV server of %s: %s", name, exc)
                self.store.event(name, "kv-failed", str(exc))
            self.functions[name] = function
            self._route_to(function, function.releases)
            self.reconciler.scale(function)

    async def remove(self, name: str, purge: bool = False) -> dict[str, Any]:
        """Drain, stop and forget the function. Its data (HEARTH_DATA) is kept for a
        function made again under the name, unless `purge`; `purge` also removes what a
        function removed before left."""
        async with self.lock(name):
            function = self.functions.pop(name, None)
            known = function is not None or self.store.exists(name)
            left = (self.config.data_dir / "functions" / name).exists()
            if not known and not (purge and left):
                raise NotFound(name)
            if function is not None:
                await self.reconciler.retire_function(function)
                for number in function.releases:
                    self.reconciler.runner.stop_zygote(name, number)
            if self.kv is not None:
                await self.kv.stop(name)
            if known:
                self.reconciler.router.remove_route(name)
                self.store.remove(name)
                self.logs.forget(name)
                self.reconciler.tally.forget(name)
            kept = self.forget(name, purge)
        await self.collect_garbage()
        return {"removed": name, "data": str(kept) if kept else None, "purged": purge}

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

    # helpers

    def lock(self, name: str) -> asyncio.Lock:
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


def _changes(before: Scale, after: Scale) -> str:
    return ", ".join(
        f"{key} {getattr(before, key)!s} -> {getattr(after, key)!s}"
        for key in LIVE_SCALE
        if getattr(before, key) != getattr(after, key)
    )


def describe_traffic(weights: dict[int, int]) -> str:
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
