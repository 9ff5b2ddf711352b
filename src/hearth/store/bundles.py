"""Bundles on disk, addressed by the sha256 of their bytes, and their unpacked code.

    bundles/<sha>.tar.gz    the archive as uploaded (to unpack again if the code goes missing)
    code/<sha>/             the unpacked code that instances run

Unpacking happens in a confined child process (`hearth.builder.unpack`). Every write goes
to a dot-named staging entry first and is renamed into place, so two deploys of the same
bundle at once both end with the same folder, and a crash leaves only dot-named leftovers,
which `collect` removes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from hearth.builder.bundle import BundleError, bundle_sha
from hearth.builder.unpack import EXIT_NO_MEMORY, EXIT_REFUSED, EXIT_WRITE_FAILED, Limits

SUFFIX = ".tar.gz"


@dataclass
class Freed:
    """What a collection removed."""

    code: list[str] = field(default_factory=list)  # sha256 of the code folders
    archives: list[str] = field(default_factory=list)
    leftovers: int = 0  # staging entries of interrupted writes
    bytes: int = 0


class BundleStore:
    def __init__(self, root: Path) -> None:
        self.archives = root / "bundles"
        self.code = root / "code"
        self.archives.mkdir(parents=True, exist_ok=True)
        self.code.mkdir(parents=True, exist_ok=True)
        self._busy: set[str] = set()  # our own staging entries, which are not leftovers

    def __repr__(self) -> str:
        return f"<BundleStore {self.code.parent} [{len(self._busy)} writes in progress]>"

    async def put(self, data: bytes, max_unpacked: int, sha: str | None = None) -> tuple[str, Path]:
        """Store and unpack a bundle (checked first); return its sha256 and code folder."""
        if sha is None:
            sha = await asyncio.to_thread(bundle_sha, data)
        code = self.code / sha
        archive = self.archives / f"{sha}{SUFFIX}"
        if code.is_dir() and archive.is_file():
            return sha, code
        async with self._staging(self.archives, ".upload-", folder=False) as upload:
            await asyncio.to_thread(upload.write_bytes, data)
            if not code.is_dir():
                await self._unpack(upload, code, max_unpacked)
            if not archive.is_file():
                os.replace(upload, archive)  # identical bytes if another put won the race
        return sha, code

    async def path(self, sha: str, max_unpacked: int) -> Path:
        """The unpacked code of a stored bundle (unpacked again if it went missing)."""
        code = self.code / sha
        if not code.is_dir():
            archive = self.archives / f"{sha}{SUFFIX}"
            if not archive.is_file():
                raise BundleError(
                    f"the code of bundle {sha[:12]} is missing from {self.code.parent} "
                    "(neither unpacked nor archived); deploy the function again"
                )
            await self._unpack(archive, code, max_unpacked)
        return code

    async def _unpack(self, archive: Path, code: Path, max_unpacked: int) -> None:
        async with self._staging(self.code, ".unpack-", folder=True) as staging:
            await unpack(archive, staging, Limits(max_unpacked))
            try:
                os.rename(staging, code)
            except OSError:
                if not code.is_dir():
                    raise
                # Another deploy of the same bundle got there first: same bytes, same code.

    @contextlib.asynccontextmanager
    async def _staging(self, where: Path, prefix: str, folder: bool) -> AsyncIterator[Path]:
        """A fresh dot-named entry in `where`, removed afterwards unless renamed away."""
        if folder:
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=where))
        else:
            fd, name = tempfile.mkstemp(prefix=prefix, dir=where)
            os.close(fd)
            path = Path(name)
        self._busy.add(path.name)
        try:
            yield path
        finally:
            await asyncio.to_thread(_remove, path)
            self._busy.discard(path.name)

    async def collect(self, keep: set[str]) -> Freed:
        """Remove the code and archives of every sha256 not in `keep`, and leftovers.

        Everything to remove is renamed away before the first await, so `keep` only has
        to be right at the moment of the call (the caller adds bundles being deployed).
        """
        freed = Freed()
        doomed: list[Path] = []
        for entry in sorted(self.code.iterdir()):
            if entry.name.startswith("."):
                if entry.name not in self._busy:
                    freed.leftovers += 1
                    doomed.append(entry)
            elif entry.name not in keep:
                freed.code.append(entry.name)
                doomed.append(entry)
        for entry in sorted(self.archives.iterdir()):
            if entry.name.startswith(".") or not entry.name.endswith(SUFFIX):
                if entry.name not in self._busy:
                    freed.leftovers += 1
                    doomed.append(entry)
            elif entry.name.removesuffix(SUFFIX) not in keep:
                freed.archives.append(entry.name.removesuffix(SUFFIX))
                doomed.append(entry)
        trash: list[Path] = []
        for entry in doomed:
            target = entry.with_name(f".trash-{os.urandom(6).hex()}")
            with contextlib.suppress(FileNotFoundError):  # a concurrent collection took it
                os.rename(entry, target)
                self._busy.add(target.name)
                trash.append(target)
        try:
            freed.bytes = await asyncio.to_thread(_remove_all, trash)
        finally:
            self._busy.difference_update(t.name for t in trash)
        return freed


# running the unpacking child (hearth.builder.unpack)


async def unpack(archive: Path, dest: Path, limits: Limits) -> None:
    """Unpack `archive` into the empty folder `dest` in a confined child process."""
    argv = [
        sys.executable,
        "-P",  # never import from the current directory
        "-m",
        "hearth.builder.unpack",
        str(archive),
        str(dest),
        str(limits.max_unpacked),
    ]
    code, output = await run_child(argv, limits.timeout)
    if code != 0:
        raise BundleError(explain_exit(code, output, limits))


async def run_child(argv: list[str], timeout: float) -> tuple[int, str]:
    """Run a command; its exit code and stderr. Killed (and waited for) after `timeout`."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            raise BundleError(
                f"unpacking the bundle took longer than {timeout:g}s and was stopped; "
                "check that the archive is a plain tar.gz of the function's folder"
            ) from None
    finally:
        if proc.returncode is None:  # timed out, or the deploy was cancelled
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")


def explain_exit(code: int, output: str, limits: Limits) -> str:
    """What a failed unpacking child means, for the person deploying."""
    last = next((ln.strip() for ln in reversed(output.splitlines()) if ln.strip()), "")
    if code == EXIT_REFUSED and last:
        return last
    if code == EXIT_WRITE_FAILED and last:
        return f"the bundle could not be unpacked: {last}"
    if code == EXIT_NO_MEMORY:
        return (
            f"unpacking the bundle needed more than {limits.memory >> 20} MiB of memory; "
            "it was refused"
        )
    if code == -signal.SIGXCPU:
        return (
            f"unpacking the bundle used more than {limits.cpu_seconds}s of CPU time; it was refused"
        )
    if code == -signal.SIGXFSZ:
        return f"the bundle unpacks to more than the limit of {limits.max_unpacked} bytes"
    how = f"killed by signal {_signal_name(-code)}" if code < 0 else f"exit code {code}"
    detail = f": {last}" if last else ""
    return f"unpacking the bundle failed ({how}){detail}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


# removing


def _remove_all(paths: list[Path]) -> int:
    """Delete files and folders; the bytes they held."""
    total = 0
    for path in paths:
        total += disk_bytes(path)
        _remove(path)
    return total


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def disk_bytes(path: Path) -> int:
    """Bytes of the files under `path` (links not followed)."""
    if not path.is_dir() or path.is_symlink():
        with contextlib.suppress(OSError):
            return path.lstat().st_size
        return 0
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total
