"""Environments: one venv per distinct requirements.txt, built once and cached by its hash.

A venv links back to the daemon's own packages through a .pth file placed after its own
site-packages: the user's pinned versions win, and the runtime (uvicorn, starlette, hearth)
is always importable without installing it into every environment.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

BASE = "base"
REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class BuildError(RuntimeError):
    """Installing requirements failed; the message holds the installer's output."""


@dataclass(frozen=True)
class Env:
    key: str
    python: str
    preload: list[str]


def env_key(requirements: str | None) -> str:
    lines = [ln.strip() for ln in (requirements or "").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        return BASE
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    return f"py{sys.version_info.major}{sys.version_info.minor}-{digest}"


def top_level_modules(requirements: str) -> list[str]:
    """Importable top-level modules of the requirements, to import in the zygote."""
    wanted = set()
    for line in requirements.splitlines():
        match = REQUIREMENT_NAME.match(line)
        if match and not line.strip().startswith(("#", "-")):
            wanted.add(_canonical(match.group(1)))
    modules = []
    for module, dists in metadata.packages_distributions().items():
        if any(_canonical(d) in wanted for d in dists) and module.isidentifier():
            modules.append(module)
    return sorted(modules)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class EnvBuilder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}

    def base(self) -> Env:
        return Env(BASE, sys.executable, [])

    def cached(self, key: str) -> Env | None:
        if key == BASE:
            return self.base()
        path = self.root / key
        python = path / "bin" / "python"
        if not python.exists():
            return None
        preload_file = path / "hearth-preload.txt"
        preload = preload_file.read_text().split() if preload_file.exists() else []
        return Env(key, str(python), preload)

    async def ensure(self, requirements: str | None, progress: Callable[[str], None]) -> Env:
        key = env_key(requirements)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            env = self.cached(key)
            if env is not None:
                return env
            assert requirements is not None
            progress(f"building environment {key}")
            return await self._build(key, requirements, progress)

    async def _build(self, key: str, requirements: str, progress: Callable[[str], None]) -> Env:
        final = self.root / key
        staging = self.root / f".{key}.building"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            uv = _uv()
            await _run([uv, "venv", "--quiet", "--python", sys.executable, str(staging)], progress)
            req_file = staging / "requirements.txt"
            req_file.write_text(requirements)
            await _run(
                [
                    uv,
                    "pip",
                    "install",
                    "--python",
                    str(staging / "bin" / "python"),
                    "-r",
                    str(req_file),
                ],
                progress,
            )
            _link_runtime(staging)
            # Module names are known only once installed: ask the new environment.
            preload = await _preload_list(staging / "bin" / "python", requirements)
            (staging / "hearth-preload.txt").write_text("\n".join(preload))
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        progress(f"environment {key} ready")
        env = self.cached(key)
        assert env is not None
        return env

    async def collect(self, keep: set[str]) -> tuple[list[str], int]:
        """Remove every environment whose key is not in `keep` (never `base`).

        Returns the keys removed and the bytes freed. The folders are renamed away before
        the first await, so `keep` only has to be right at the moment of the call.
        """
        removed: list[str] = []
        doomed: list[Path] = []
        for entry in sorted(self.root.iterdir()):
            key = entry.name
            if key.startswith(".") and key.endswith(".collected"):
                doomed.append(entry)  # left by a collection that was interrupted
                continue
            if key.startswith(".") or key == BASE or key in keep or not entry.is_dir():
                continue  # dot-named: a build in progress (`_build` clears its own leftovers)
            trash = self.root / f".{key}.{os.urandom(4).hex()}.collected"
            try:
                os.rename(entry, trash)
            except FileNotFoundError:
                continue
            removed.append(key)
            doomed.append(trash)

        def remove() -> int:
            total = 0
            for folder in doomed:
                for root, dirs, files in os.walk(folder):
                    for name in dirs + files:
                        try:
                            total += os.lstat(os.path.join(root, name)).st_size
                        except OSError:
                            continue  # removed meanwhile
                shutil.rmtree(folder, ignore_errors=True)
            return total

        return removed, await asyncio.to_thread(remove)


def _uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(found).exists():
        raise BuildError("the 'uv' installer is missing; reinstall hearth (pip install hearth)")
    return found


def _link_runtime(venv: Path) -> None:
    """Make the daemon's packages (the runtime) importable after the venv's own."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    stdlib = sysconfig.get_paths()["stdlib"]
    paths = [p for p in sys.path if p and Path(p).is_dir() and not p.startswith(stdlib)]
    (site / "zz-hearth-runtime.pth").write_text("\n".join(paths) + "\n")


async def _preload_list(python: Path, requirements: str) -> list[str]:
    script = (
        "import sys; from hearth.builder.envs import top_level_modules; "
        "print(' '.join(top_level_modules(sys.stdin.read())))"
    )
    proc = await asyncio.create_subprocess_exec(
        str(python),
        "-c",
        script,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate(requirements.encode())
    return out.decode().split() if proc.returncode == 0 else []


async def _run(argv: list[str], progress: Callable[[str], None]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output = []
    async for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip()
        output.append(line)
        progress(line)
    if await proc.wait() != 0:
        tail = "\n".join(output[-30:])
        raise BuildError(f"installing requirements.txt failed:\n{tail}")
