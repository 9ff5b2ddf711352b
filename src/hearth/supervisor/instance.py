"""An instance as the supervisor tracks it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class InstanceState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"
    CRASHED = "crashed"


class StartError(RuntimeError):
    """An instance failed to become ready; `str()` holds what it reported (a traceback)."""


@dataclass(eq=False)
class Instance:
    id: str
    function: str
    version: int
    env: str
    socket: str
    concurrency: int
    started: float = field(default_factory=time.time)
    pid: int = 0
    state: InstanceState = InstanceState.STARTING
    exit_code: int | None = None
    memory_limit: int = 0
    liveness: float = 10.0  # seconds without a heartbeat before it is killed
    heartbeat: float = 2.5  # seconds between its beats
    last_beat: float = 0.0
    status: int = -1  # the read end of its status pipe: a report, then heartbeats
    rss: int = 0  # resident bytes, as last polled
    kill_reason: str | None = None
    exited: asyncio.Future[int | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def __repr__(self) -> str:
        return f"<Instance {self.id} pid={self.pid} {self.state}>"

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    def describe(self) -> dict[str, Any]:
        """The process; what the gateway counts of it is the control plane's to add."""
        return {
            "id": self.id,
            "version": self.version,
            "pid": self.pid,
            "state": str(self.state),
            "in_flight": 0,
            "requests": 0,
            "age": round(time.time() - self.started, 3),
            "memory_bytes": self.rss,
        }
