"""The sandbox a host can give, and each function's policy and places on disk.

`Host` is probed once at start (is the daemon root, which Landlock ABI, is libseccomp
there); `Planner` turns a function's version into a Policy and prepares the folders the
function owns. The levels: `off` (development: no walls, said loudly), `auto` (every
layer the host offers), `strict` (refuse to start unless the host offers them all).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from hearth.sandbox import landlock, seccomp
from hearth.sandbox.cgroups import Budget, Cgroups
from hearth.sandbox.disks import Disks
from hearth.sandbox.disks import available as disks_available
from hearth.sandbox.policy import DEVICES, SYSTEM_READ, Policy

LEVELS = ("off", "auto", "strict")
UID_BASE = 200_000  # function uids: UID_BASE + a number the store keeps for each function
CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "MALLOC_ARENA_MAX": "2"}


class SandboxUnavailable(RuntimeError):
    """`--sandbox strict` asked for layers this host cannot give."""


@dataclass(frozen=True)
class Host:
    root: bool
    landlock: int  # ABI, 0 = none
    seccomp: bool
    disks: bool = False  # loop devices and mkfs.ext4, and the daemon in its own mounts

    @classmethod
    def probe(cls) -> Host:
        root = os.geteuid() == 0
        return cls(root, landlock.abi_version(), seccomp.available(), disks_available())


@dataclass(frozen=True)
class Layers:
    """What `auto` or `strict` applies on a host (all False for `off`)."""

    identity: bool
    mounts: bool
    landlock: int
    seccomp: bool
    disks: bool = False

    def describe(self) -> str:
        if not (self.identity or self.landlock or self.seccomp):
            return "OFF: functions run as the daemon's user with no walls (development only)"
        parts = []
        if self.identity:
            parts.append("uid per function")
        if self.mounts:
            parts.append("private mounts (own /tmp, /proc hidepid)")
        if self.landlock:
            parts.append(f"landlock v{self.landlock}")
        if self.seccomp:
            parts.append("seccomp")
        if self.disks:
            parts.append("a disk per function (ext4 image)")
        return ", ".join(parts)


def layers(level: str, host: Host) -> Layers:
    """The layers for `level` on `host`; pure, so it is tested without a host."""
    if level not in LEVELS:
        raise ValueError(f"unknown sandbox level {level!r}: use one of {', '.join(LEVELS)}")
    if level == "off":
        return Layers(False, False, 0, False)
    chosen = Layers(host.root, host.root, host.landlock, host.seccomp, host.root and host.disks)
    if level == "strict":
        missing = [
            what
            for what, ok in (
                ("root (for a uid per function and private mounts)", host.root),
                ("Landlock (Linux >= 5.13 with landlock in the LSM list)", host.landlock > 0),
                ("libseccomp (apt-get install libseccomp2)", host.seccomp),
                ("loop devices and e2fsprogs (for a disk per function)", host.disks),
            )
            if not ok
        ]
        if missing:
            raise SandboxUnavailable(
                "--sandbox strict needs " + "; ".join(missing) + ": fix the host, or use "
                "--sandbox auto to run with what it offers"
            )
    return chosen


@dataclass(frozen=True)
class Places:
    """A function's own folders: persistent data, temporary files, instance sockets."""

    data: Path
    tmp: Path
    sockets: Path


class Planner:
    def __init__(
        self, data_dir: Path, run_dir: Path, chosen: Layers, cgroups: Cgroups | None = None
    ) -> None:
        self.data_dir = data_dir
        self.run_dir = run_dir
        self.layers = chosen
        self.runtime = runtime_paths(data_dir)
        # Resource limits need root, as the identity layer does.
        self.cgroups = cgroups if cgroups is not None and chosen.identity else None
        self.disks = Disks(data_dir / "functions") if chosen.disks else None

    def describe(self) -> str:
        text = self.layers.describe()
        if self.cgroups is not None and self.cgroups.describe():
            text += f", {self.cgroups.describe()}"
        if self.layers.identity and not self.layers.disks:
            text += ", disk not limited (needs loop devices and e2fsprogs)"
        return text

    def uid(self, number: int) -> int | None:
        """The uid of the function whose identity number is `number` (None: no switch)."""
        return UID_BASE + number if self.layers.identity else None

    def places(self, function: str, uid: int | None, disk: int | None = None) -> Places:
        """Create (or fix up) the function's folders, owned by its uid, closed to others;
        with `disk` bytes, its data folder is a disk of that size (where the host can)."""
        home = self.data_dir / "functions" / function
        places = Places(home / "data", home / "tmp", self.run_dir / function)
        for folder in (home.parent, home):
            folder.mkdir(mode=0o711, exist_ok=True)
        for folder in (places.data, places.tmp, places.sockets):
            folder.mkdir(mode=0o700, exist_ok=True)
            if uid is not None:
                os.chown(folder, uid, uid)
        if self.disks is not None and disk is not None and uid is not None:
            self.disks.ready(function, disk, uid)
        return places

    def kv_policy(self, function: str, number: int) -> tuple[Policy, Path]:
        """The policy of the function's key-value server (`hearth.kv`) and its folder: the
        function's uid, writing only that folder (its files, never seen by the function's
        own processes) and the socket folder, with no network at all where it can."""
        chosen = self.layers
        uid = self.uid(number)
        places = self.places(function, uid)
        folder = self.data_dir / "functions" / function / "kv"
        folder.mkdir(mode=0o700, exist_ok=True)
        if uid is not None:
            os.chown(folder, uid, uid)
        policy = Policy(
            uid=uid,
            gid=uid,
            rlimits=((resource.RLIMIT_CORE, 0),),
            mounts=chosen.mounts,
            network=not chosen.mounts,  # a network namespace needs root, as mounts
            landlock=chosen.landlock,
            seccomp=chosen.seccomp,
            read=(*SYSTEM_READ, *self.runtime),
            write=(str(folder), str(places.sockets), *DEVICES),
            env={**CLEAN_ENV, "HOME": str(folder)},
        )
        return policy, folder

    def copy_policy(self, function: str, number: int, target: Path) -> Policy:
        """The policy a backup copies the function's data folder under (`store.copy`): its
        uid, with that folder and `target` (made its own here) and nothing else."""
        chosen = self.layers
        uid = self.uid(number)
        if uid is not None:
            os.chown(target, uid, uid)
        return Policy(
            uid=uid,
            gid=uid,
            rlimits=((resource.RLIMIT_CORE, 0),),
            mounts=chosen.mounts,
            network=not chosen.mounts,
            landlock=chosen.landlock,
            seccomp=chosen.seccomp,
            read=(*SYSTEM_READ, *self.runtime),
            # writing the data folder too: SQLite reads a busy database through its -shm
            write=(str(self.data_folder(function)), str(target), *DEVICES),
            env=dict(CLEAN_ENV),
        )

    def data_folder(self, function: str) -> Path:
        """Where the function's data (HEARTH_DATA) is, as the daemon sees it."""
        return self.data_dir / "functions" / function / "data"

    def forget(self, function: str, purge: bool = False) -> Path | None:
        """Remove the function's sockets, temporary files and cgroups; its disk is
        unmounted. Its data stays (the folder is returned), unless `purge`: then it goes
        too (None is returned)."""
        if self.cgroups is not None:
            self.cgroups.forget(function)
        if self.disks is not None:
            self.disks.release(function)
        shutil.rmtree(self.run_dir / function, ignore_errors=True)
        home = self.data_dir / "functions" / function
        shutil.rmtree(home / "tmp", ignore_errors=True)
        if purge:
            shutil.rmtree(home, ignore_errors=True)
        return home if home.exists() else None

    def policy(
        self,
        function: str,
        number: int,
        code: Path,
        env_root: Path | None,
        egress: bool = True,
        budget: Budget | None = None,
    ) -> Policy:
        """The policy of one version of `function`, whose identity number is `number`;
        its folders and cgroups are made ready on the way."""
        chosen = self.layers
        uid = self.uid(number)
        places = self.places(function, uid, budget.disk if budget is not None else None)
        tmp = "/tmp" if chosen.mounts else str(places.tmp)
        read = [*SYSTEM_READ, *self.runtime, str(code)]
        if env_root is not None:
            read.append(str(env_root))
        write = [str(places.data), str(places.sockets), tmp, *DEVICES]
        env = {**CLEAN_ENV, "HOME": str(places.data), "TMPDIR": tmp}
        env["HEARTH_DATA"] = str(places.data)
        joins: tuple[str, ...] = ()
        if self.cgroups is not None and budget is not None:
            joins = self.cgroups.prepare(function, budget)
        rlimits = [(resource.RLIMIT_CORE, 0)]
        if budget is not None and chosen.identity:
            rlimits.append((resource.RLIMIT_NOFILE, budget.files))
        return Policy(
            uid=uid,
            cgroups=joins,
            rlimits=tuple(rlimits),
            gid=uid,
            mounts=chosen.mounts,
            network=egress or not chosen.mounts,  # a network namespace needs root, as mounts
            landlock=chosen.landlock,
            seccomp=chosen.seccomp,
            read=tuple(read),
            write=tuple(write),
            env=env,
        )


class BuildJail:
    """Environment builds run as the builder uid (UID_BASE), seeing and writing only their
    staging folder and the package cache, with the function sandbox's other layers."""

    def __init__(
        self, planner: Planner, cache: Path, environ: dict[str, str] | None = None
    ) -> None:
        self.planner = planner
        self.cache = cache
        # The operator's way to reach the package index (proxies, CA bundles, uv and pip
        # settings) is the only part of the daemon's environment a build sees.
        environ = dict(os.environ) if environ is None else environ
        self.network_env = {k: v for k, v in environ.items() if _network_setting(k)}
        self.network_files = tuple(
            v for v in self.network_env.values() if v.startswith("/") and os.path.exists(v)
        )
        self.uid = UID_BASE if planner.layers.identity else None
        cache.mkdir(parents=True, exist_ok=True)
        if self.uid is not None:
            os.chown(cache, self.uid, self.uid)

    def prepare(self, staging: Path) -> None:
        """Create the staging folder the build may write."""
        staging.mkdir(mode=0o755)
        if self.uid is not None:
            os.chown(staging, self.uid, self.uid)

    def wrap(self, argv: list[str], staging: Path) -> list[str]:
        """`argv`, run under the build policy."""
        chosen = self.planner.layers
        tmp = "/tmp" if chosen.mounts else str(staging / ".tmp")
        env = {**CLEAN_ENV, **self.network_env}
        env.update(HOME=str(self.cache), UV_CACHE_DIR=str(self.cache), TMPDIR=tmp)
        # The cache and the staging folder are separate mounts in the build's view: uv's
        # hardlinks would fail there (and it would say so on every build).
        env.setdefault("UV_LINK_MODE", "copy")
        policy = Policy(
            uid=self.uid,
            gid=self.uid,
            mounts=chosen.mounts,
            landlock=chosen.landlock,
            seccomp=chosen.seccomp,
            read=(*SYSTEM_READ, *self.planner.runtime, *self.network_files),
            write=(str(staging), str(self.cache), tmp, *DEVICES),
            env=env,
        )
        runner = [sys.executable, "-m", "hearth.sandbox.run", json.dumps(policy.to_dict())]
        return [*runner, *argv]

    def seal(self, staging: Path) -> None:
        """Hand the finished environment to root: no later build may change it."""
        if self.uid is None:
            return
        for folder, dirs, files in os.walk(staging):
            os.lchown(folder, 0, 0)
            for name in (*dirs, *files):
                os.lchown(os.path.join(folder, name), 0, 0)


def _network_setting(name: str) -> bool:
    upper = name.upper()
    return (
        upper.startswith(("UV_", "PIP_"))
        or upper in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
        or upper in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    )


def runtime_paths(data_dir: Path) -> tuple[str, ...]:
    """Where the daemon's Python and packages (the runtime every instance imports) live,
    never a folder that holds the data directory (the daemon's working directory may)."""
    import hearth

    candidates = {sys.prefix, sys.base_prefix, str(Path(hearth.__file__).parent)}
    candidates.update(p for p in sys.path if p and os.path.isdir(p))
    data = str(data_dir.resolve())
    kept = []
    for path in candidates:
        real = os.path.realpath(path)
        if data == real or data.startswith(real.rstrip("/") + "/"):
            continue
        kept.append(real)
    return tuple(sorted(set(kept)))
