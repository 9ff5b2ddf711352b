"""What a function's processes may do, as one plain value: built by the daemon, applied
by the zygote in the forked child before any of the function's code runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Read-only for every function: the system and the Python installation.
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/sys")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


@dataclass(frozen=True)
class Policy:
    """Everything `apply` does, in the order it does it."""

    uid: int | None = None  # None: keep the daemon's identity (it is not root)
    gid: int | None = None
    mounts: bool = False  # a private filesystem view (root only): see sandbox.mounts
    network: bool = True  # False: a network namespace of its own, with no interfaces up
    landlock: int = 0  # the Landlock ABI to use; 0 = none
    seccomp: bool = False
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    rlimits: tuple[tuple[int, int], ...] = ()
    cgroups: tuple[str, ...] = ()  # cgroup.procs files to join (root only)
    env: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        return cls(
            uid=data["uid"],
            gid=data["gid"],
            mounts=data["mounts"],
            network=data["network"],
            landlock=data["landlock"],
            seccomp=data["seccomp"],
            read=tuple(data["read"]),
            write=tuple(data["write"]),
            rlimits=tuple((int(r), int(v)) for r, v in data["rlimits"]),
            cgroups=tuple(data.get("cgroups", ())),
            env=dict(data["env"]),
        )
