"""What the control plane needs of the supervisor and the gateway, as protocols: the
daemon wires in the real ones, the control plane's tests fakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from hearth.builder.envs import Env
from hearth.gateway import Backend, Pool
from hearth.sandbox.cgroups import Budget
from hearth.supervisor import Instance


class Runner(Protocol):
    """Starts and stops instances (the supervisor)."""

    instances: dict[int, Instance]

    async def start(
        self,
        function: str,
        version: int,
        env: Env,
        code_dir: Path,
        entrypoint: str | None,
        user_env: dict[str, str],
        concurrency: int,
        drain: float,
        memory_limit: int = 0,
        egress: bool = True,
        budget: Budget | None = None,
        liveness: float = 10.0,
    ) -> Instance: ...

    async def stop(self, instance: Instance, grace: float) -> None: ...

    async def kill(self, instance: Instance) -> None: ...

    def stop_zygote(self, function: str, version: int) -> Any: ...

    def check(self) -> None: ...

    def set_budget(self, function: str, budget: Budget) -> None: ...


class Router(Protocol):
    """Sends requests to backends (the gateway)."""

    def set_pools(self, name: str, pools: list[Pool]) -> Any: ...

    def remove_route(self, name: str) -> None: ...

    async def drain(self, pool: Pool, backend: Backend, timeout: float) -> bool: ...

    def remove_backend(self, pool: Pool, backend: Backend) -> None: ...


class KeyValue(Protocol):
    """Runs the functions' key-value servers (hearth.kv)."""

    @property
    def available(self) -> bool: ...

    def url(self, function: str) -> str: ...

    async def ensure(self, function: str, memory: int) -> None: ...

    async def stop(self, function: str) -> None: ...

    def snapshot(self, function: str) -> Path | None: ...

    def describe(self, function: str) -> dict[str, Any] | None: ...

    async def close(self) -> None: ...
