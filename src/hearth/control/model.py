"""What the control plane knows of each function: the releases that serve it and their
replicas. Plain records; the reconciler and the rollouts change them, the views read them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hearth.autoscaler import Window
from hearth.builder.envs import Env
from hearth.gateway import Backend, Pool
from hearth.gateway.access import Access
from hearth.sandbox.cgroups import Budget
from hearth.spec import FunctionSpec
from hearth.supervisor import Instance


@dataclass(eq=False)
class Replica:
    """One instance serving one release: the supervisor's process joined to the gateway's
    backend that sends it requests."""

    instance: Instance
    backend: Backend
    release: Release

    @property
    def id(self) -> str:
        return self.instance.id

    def describe(self) -> dict[str, Any]:
        return {
            **self.instance.describe(),
            "in_flight": self.backend.in_flight,
            "requests": self.backend.requests,
        }


@dataclass(eq=False)
class Release:
    """One version of a function that serves, or is about to."""

    function: str
    number: int
    spec: FunctionSpec
    env: Env
    code: Path
    pool: Pool
    # [env] with the secrets over it, as they were when this release was made: all its
    # instances see the same values; a changed secret makes new releases (a roll).
    user_env: dict[str, str] = field(default_factory=dict)
    replicas: list[Replica] = field(default_factory=list)
    starting: int = 0
    window: Window = field(default_factory=Window)  # the autoscaler's memory of its demand

    def replica(self, instance_id: str) -> Replica | None:
        return next((r for r in self.replicas if r.id == instance_id), None)


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
    def replicas(self) -> list[Replica]:
        return [r for release in self.releases.values() for r in release.replicas]

    def retry_in(self, now: float | None = None) -> float:
        return max(0.0, self.next_try - (time.monotonic() if now is None else now))


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
