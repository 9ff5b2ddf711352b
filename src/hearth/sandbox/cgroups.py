"""Per-function resource limits with cgroups: memory, tasks (processes and threads) and a
CPU share, beside the daemon in its own cgroup, on cgroup v1 (a hierarchy per controller, as on
this machine) or v2 (one unified hierarchy). Only the daemon (root) writes here; a
function's zygote joins its cgroup before it drops root, and its instances inherit it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Budget:
    memory: int  # bytes for all of the function's processes together
    tasks: int  # processes and threads
    cpu_weight: int = 100  # relative share under contention (v2 weight; v1 shares x10.24)
    files: int = 1024  # open files per process (an rlimit, not a cgroup)
    disk: int = 1024**3  # bytes in HEARTH_DATA (a disk of its own, not a cgroup)


class Cgroups:
    """The cgroups of one daemon's functions: `PREFIX-FUNCTION` beside the daemon in its
    own cgroup, one level deep.

    Flat on purpose. Nested under a folder of the daemon's, the functions' groups made a
    light function's latency beside a busy one 2.5x worse (group scheduling: p50 3.5 ->
    9 ms, p99 6 -> 36 ms with 4 busy neighbour processes on 2 cores) and weighed all the
    functions together as one process against the rest of the host; one level deep, each
    function weighs as one process and its latency beside the busy one stayed at 3.2 ms.
    """

    def __init__(
        self,
        prefix: str = "hearth",
        root: Path = ROOT,
        proc_self: Path = Path("/proc/self/cgroup"),
    ) -> None:
        """`prefix` is this daemon's (one per data directory: two daemons on a host never
        share a function's cgroup)."""
        self.prefix = prefix
        self.dirs: dict[str, Path] = {}  # controller -> the daemon's own cgroup folder
        self.v2 = False
        try:
            lines = proc_self.read_text().splitlines()
        except OSError:
            return
        for line in lines:
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                if controller in ("memory", "pids", "cpu") and (root / controller).is_dir():
                    self.dirs[controller] = root / controller / path.lstrip("/")
        if not self.dirs and (root / "cgroup.controllers").is_file():
            available = (root / "cgroup.controllers").read_text().split()
            path = next((ln.split(":", 2)[2] for ln in lines if ln.startswith("0::")), "/")
            base = root / path.lstrip("/")
            self.dirs = {c: base for c in ("memory", "pids", "cpu") if c in available}
            self.v2 = bool(self.dirs)

    @property
    def controllers(self) -> list[str]:
        return sorted(self.dirs)

    def describe(self) -> str:
        if not self.dirs:
            return ""
        return f"cgroup {'v2' if self.v2 else 'v1'} {'+'.join(self.controllers)}"

    def folder(self, controller: str, function: str) -> Path:
        return self.dirs[controller] / f"{self.prefix}-{function}"

    def prepare(self, function: str, budget: Budget) -> tuple[str, ...]:
        """Create (or update) the function's cgroups; the files its zygote must join."""
        joins = []
        if self.v2:
            enable = " ".join(f"+{c}" for c in self.dirs)
            _write(next(iter(self.dirs.values())) / "cgroup.subtree_control", enable)
        for controller in self.dirs:
            folder = self.folder(controller, function)
            folder.mkdir(exist_ok=True)
            for name, value in self._settings(controller, budget):
                _write(folder / name, value)
            procs = str(folder / "cgroup.procs")
            if procs not in joins:
                joins.append(procs)
        return tuple(joins)

    def tidy(self) -> None:
        """End and remove what a daemon of this data directory left (killed before it
        could); at its stop, what its functions left."""
        for function in self._left():
            self.forget(function)

    def close(self, patience: float = 3.0) -> None:
        """Remove the functions' folders. A folder can be removed once its last process
        is gone, not merely killed: try again for a few seconds."""
        deadline = time.monotonic() + patience
        self.tidy()
        while self._left() and time.monotonic() < deadline:
            time.sleep(0.05)
            self.tidy()

    def _left(self) -> set[str]:
        mine = f"{self.prefix}-"
        return {
            f.name[len(mine) :]
            for base in self.dirs.values()
            if base.is_dir()
            for f in base.iterdir()
            if f.is_dir() and f.name.startswith(mine)
        }

    def _settings(self, controller: str, budget: Budget) -> list[tuple[str, str]]:
        if controller == "memory":
            return [("memory.max" if self.v2 else "memory.limit_in_bytes", str(budget.memory))]
        if controller == "pids":
            return [("pids.max", str(budget.tasks))]
        if self.v2:
            return [("cpu.weight", str(budget.cpu_weight))]
        return [("cpu.shares", str(budget.cpu_weight * 1024 // 100))]

    def hits(self, function: str) -> dict[str, int]:
        """How often each limit was hit so far: {"memory": n, "tasks": n}."""
        found: dict[str, int] = {}
        memory, pids = self.dirs.get("memory"), self.dirs.get("pids")
        if memory is not None:
            name = "memory.events" if self.v2 else "memory.failcnt"
            text = _read(self.folder("memory", function) / name)
            if self.v2:
                found["memory"] = _field(text, "max")
            else:
                found["memory"] = int(text or 0)
        if pids is not None:
            found["tasks"] = _field(_read(self.folder("pids", function) / "pids.events"), "max")
        return found

    def end(self, function: str) -> int:
        """SIGKILL every process left in the function's cgroups: what its instances
        started and left behind (a double fork escapes the lifeline, not the cgroup).
        How many were killed."""
        killed = 0
        for _ in range(50):
            pids: set[int] = set()
            for controller in self.dirs:
                procs = _read(self.folder(controller, function) / "cgroup.procs")
                pids.update(int(p) for p in procs.split())
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed += len(pids)
            time.sleep(0.01)
        return killed

    def forget(self, function: str) -> None:
        """End what is left of the function's processes and remove its cgroups."""
        self.end(function)
        for controller in self.dirs:
            with contextlib.suppress(OSError):
                os.rmdir(self.folder(controller, function))  # once every process is gone


def join(procs_files: tuple[str, ...]) -> None:
    """Move this process into the given cgroups (before it drops root)."""
    for procs in procs_files:
        _write(Path(procs), str(os.getpid()))


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _field(text: str, key: str) -> int:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0
