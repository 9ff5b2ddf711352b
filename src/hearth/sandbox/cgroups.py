"""Per-function resource limits with cgroups: memory, tasks (processes and threads) and a
CPU share, under the daemon's own cgroup, on cgroup v1 (a hierarchy per controller, as on
this machine) or v2 (one unified hierarchy). Only the daemon (root) writes here; a
function's zygote joins its cgroup before it drops root, and its instances inherit it.
"""

from __future__ import annotations

import contextlib
import os
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
    """The cgroup folders of one daemon (`hearth` beneath its own cgroup)."""

    def __init__(self, root: Path = ROOT, proc_self: Path = Path("/proc/self/cgroup")) -> None:
        self.dirs: dict[str, Path] = {}  # controller -> the daemon's `hearth` folder
        self.v2 = False
        try:
            lines = proc_self.read_text().splitlines()
        except OSError:
            return
        for line in lines:
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                if controller in ("memory", "pids", "cpu") and (root / controller).is_dir():
                    self.dirs[controller] = root / controller / path.lstrip("/") / "hearth"
        if not self.dirs and (root / "cgroup.controllers").is_file():
            available = (root / "cgroup.controllers").read_text().split()
            path = next((ln.split(":", 2)[2] for ln in lines if ln.startswith("0::")), "/")
            base = root / path.lstrip("/") / "hearth"
            self.dirs = {c: base for c in ("memory", "pids", "cpu") if c in available}
            self.v2 = bool(self.dirs)

    @property
    def controllers(self) -> list[str]:
        return sorted(self.dirs)

    def describe(self) -> str:
        if not self.dirs:
            return ""
        return f"cgroup {'v2' if self.v2 else 'v1'} {'+'.join(self.controllers)}"

    def prepare(self, function: str, budget: Budget) -> tuple[str, ...]:
        """Create (or update) the function's cgroups; the files its zygote must join."""
        joins = []
        for controller, base in self.dirs.items():
            folder = base / function
            if self.v2 and not base.is_dir():
                base.mkdir(exist_ok=True)
                _write(base.parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in self.dirs))
                _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in self.dirs))
            folder.mkdir(parents=True, exist_ok=True)
            for name, value in self._settings(controller, budget):
                _write(folder / name, value)
            procs = str(folder / "cgroup.procs")
            if procs not in joins:
                joins.append(procs)
        return tuple(joins)

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
            text = _read(memory / function / name)
            if self.v2:
                found["memory"] = _field(text, "max")
            else:
                found["memory"] = int(text or 0)
        if pids is not None:
            found["tasks"] = _field(_read(pids / function / "pids.events"), "max")
        return found

    def forget(self, function: str) -> None:
        for base in self.dirs.values():
            with contextlib.suppress(OSError):
                os.rmdir(base / function)  # only once every process in it is gone


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
