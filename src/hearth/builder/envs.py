"""Environments: one venv per distinct requirements.txt, built once and cached by its hash.

A venv links back to the daemon's own packages through a .pth file placed after its own
site-packages: the user's pinned versions win, and the runtime (uvicorn, starlette, hearth)
is always importable without installing it into every environment.

A function's requirements.txt may only name packages (PEP 508: versions, extras, markers).
Options, URLs and paths are refused: they would let a deploy choose where the daemon
downloads from or which local files it reads. The package index is the operator's choice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import os
import re
import shutil
import signal
import sys
import sysconfig
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from packaging.requirements import InvalidRequirement, Requirement

BASE = "base"
REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
MAX_REQUIREMENTS_BYTES = 1024**2
MAX_REQUIREMENTS = 1000
# pip's rule for comments: `#` at the start of a line or after whitespace.
_COMMENT = re.compile(r"(^|\s)#.*$")
_URL_OR_PATH = re.compile(r"://|^[A-Za-z][A-Za-z0-9+.-]*:|^[.~]|[/\\]")
_OPTION_INSIDE = re.compile(r"\s--?[A-Za-z]")
# Installers read a requirement "name" with one of these endings as a local file.
_ARCHIVES = (
    ".whl",
    ".zip",
    ".egg",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz",
    ".tbz2",
    ".tar.xz",
    ".txz",
    ".tlz",
    ".tar.lz",
    ".tar.lzma",
    ".tar.zst",
    ".tzst",
)
_ALLOWED = 'list packages by name, with versions, extras or markers (e.g. "flask>=3.0")'
_OUTPUT_TAIL = 30
_CHUNK = 64 * 1024
_LINE = 2000  # longer installer lines are cut when shown


class BuildError(RuntimeError):
    """Installing requirements failed; the message holds the installer's output."""


class Jail(Protocol):
    """Where builds run confined (hearth.sandbox.plan.BuildJail)."""

    def prepare(self, staging: Path) -> None: ...

    def wrap(self, argv: list[str], staging: Path) -> list[str]: ...

    def seal(self, staging: Path) -> None: ...


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


def check_requirements(text: str) -> None:
    """Refuse (BuildError) a requirements.txt holding anything but requirements by name."""
    requirement_lines(text)


def requirement_lines(text: str) -> list[str]:
    """The requirements in a requirements.txt, normalised; BuildError for a refused line.

    Allowed: PEP 508 requirements by name (version specifiers, extras, environment
    markers), comments and blank lines. Refused: options (`-i`, `--index-url`, `-f`, `-r`,
    `-e`, `--hash`, ...), direct references (`name @ URL`), URLs and local paths.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_REQUIREMENTS_BYTES:
        raise BuildError(f"requirements.txt is {size} bytes; at most 1MiB is allowed")
    found: list[str] = []
    # splitlines() breaks at every line ending an installer knows, and more: no line the
    # installer reads can hide inside a line checked here.
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw).strip()
        if not line:
            continue
        if len(found) == MAX_REQUIREMENTS:
            raise BuildError(f"requirements.txt lists more than {MAX_REQUIREMENTS} requirements")
        try:
            found.append(_requirement(line))
        except ValueError as exc:
            shown = raw.strip()
            shown = shown if len(shown) <= 100 else shown[:97] + "..."
            raise BuildError(
                f"requirements.txt line {number}: {shown!r}: {exc}; {_ALLOWED}"
            ) from None
    return found


def _requirement(line: str) -> str:
    """One requirement line (comment removed), normalised; ValueError saying why not."""
    if line.startswith("-"):
        option = line.split()[0].split("=")[0][:40]
        raise ValueError(
            f"option {option} is not allowed (install options and the package index are "
            "chosen by the operator)"
        )
    if line.endswith("\\"):
        raise ValueError("continued lines are not allowed: put each requirement on one line")
    if "${" in line:
        raise ValueError("environment variable references are not allowed")
    try:
        requirement = Requirement(line)
    except InvalidRequirement as exc:
        if _URL_OR_PATH.search(line.split(";")[0]):
            raise ValueError("URLs and local paths are not allowed") from None
        if _OPTION_INSIDE.search(line):
            raise ValueError("options (such as --hash) are not allowed") from None
        reason = next(iter(str(exc).splitlines()), "not valid PEP 508")
        raise ValueError(f"not a requirement: {reason}") from None
    if requirement.url is not None:
        raise ValueError("direct references (name @ URL) are not allowed")
    if requirement.name.lower().endswith(_ARCHIVES):
        raise ValueError("a file name is read as a local path, which is not allowed")
    return str(requirement)


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
    def __init__(
        self,
        root: Path,
        index_url: str | None = None,
        build_timeout: float = 600.0,
        jail: Jail | None = None,
    ) -> None:
        self.root = root
        self.jail = jail  # runs builds sandboxed (package code runs during a build)
        self.index_url = index_url
        self.build_timeout = build_timeout
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}
        _remove_staging(self.root)

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
        # Checked before the cache: a refused file is refused even if its env exists.
        lines = requirement_lines(requirements) if requirements else []
        key = env_key(requirements)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            env = self.cached(key)
            if env is not None:
                return env
            progress(f"building environment {key}")
            return await self._build(key, "".join(f"{line}\n" for line in lines), progress)

    async def _install(
        self, staging: Path, requirements: str, progress: Callable[[str], None]
    ) -> None:
        uv = _uv()
        jail = self.jail

        def confined(argv: list[str]) -> list[str]:
            return jail.wrap(argv, staging) if jail is not None else argv

        if jail is not None:
            jail.prepare(staging)
        # No configuration files: the daemon's working directory may hold a project of its
        # own, and a build reads only what the operator's environment says (UV_*).
        where = staging if staging.is_dir() else staging.parent
        await _run(
            confined(
                [uv, "venv", "--no-config", "--quiet", "--python", sys.executable, str(staging)]
            ),
            progress,
            where,
        )
        req_file = staging / "requirements.txt"
        req_file.write_text(requirements)
        index = ["--index-url", self.index_url] if self.index_url else []
        python = staging / "bin" / "python"
        install = [*index, "-r", str(req_file)]
        await _run(
            confined([uv, "pip", "install", "--no-config", "--python", str(python), *install]),
            progress,
            staging,
        )
        _link_runtime(staging)
        # Module names are known only once installed: ask the new environment.
        preload = await _preload_list(confined([str(python)]), requirements, staging)
        if jail is not None:
            jail.seal(staging)
        (staging / "hearth-preload.txt").write_text("\n".join(preload))

    async def _build(self, key: str, requirements: str, progress: Callable[[str], None]) -> Env:
        final = self.root / key
        staging = self.root / f".{key}.building"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            deadline = asyncio.timeout(self.build_timeout)
            try:
                async with deadline:
                    await self._install(staging, requirements, progress)
            except TimeoutError as exc:
                if not deadline.expired():
                    raise
                raise BuildError(
                    f"installing requirements.txt took longer than {self.build_timeout:g}s and "
                    "was stopped; check that every package can be downloaded from the package "
                    "index, or ask the operator for a longer build timeout"
                ) from exc
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


def _remove_staging(root: Path) -> None:
    """Remove `.<key>.building` folders a daemon killed mid-build left behind."""
    for path in root.glob(".*.building"):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


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


async def _preload_list(python: list[str], requirements: str, cwd: Path) -> list[str]:
    script = (
        "import sys; from hearth.builder.envs import top_level_modules; "
        "print(' '.join(top_level_modules(sys.stdin.read())))"
    )
    async with _process(
        *python,
        "-c",
        script,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    ) as proc:
        out, _ = await proc.communicate(requirements.encode())
    return out.decode().split() if proc.returncode == 0 else []


async def _run(argv: list[str], progress: Callable[[str], None], cwd: Path) -> None:
    async with _process(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    ) as proc:
        assert proc.stdout is not None
        tail: collections.deque[str] = collections.deque(maxlen=_OUTPUT_TAIL)

        def emit(raw: bytes) -> None:
            line = raw[:_LINE].decode(errors="replace").rstrip()
            tail.append(line)
            progress(line)

        pending = b""
        # Chunks, not readline(): one over-long line must not end the build with ValueError.
        while chunk := await proc.stdout.read(_CHUNK):
            *complete, pending = (pending + chunk).split(b"\n")
            if len(pending) > _CHUNK:
                complete.append(pending)
                pending = b""
            for raw in complete:
                emit(raw)
        if pending:
            emit(pending)
        if await proc.wait() != 0:
            raise BuildError("installing requirements.txt failed:\n" + "\n".join(tail))


@contextlib.asynccontextmanager
async def _process(*argv: str, **options: Any) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child in a process group of its own, killed with the group if left before it exits.

    Leaving early means a timeout or a cancelled deploy; the group matters because
    installers start helpers (build backends, compilers) of their own.
    """
    proc = await asyncio.create_subprocess_exec(*argv, start_new_session=True, **options)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
