"""The daemon's hands inside a function's data folder (`hearth data`), which the function
fills as it likes, links included: every step is opened relative to the one before,
without following a link, so nothing a function planted leads the daemon (root) out of
its folder; what is written is given to the function's uid.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ReachError(ValueError):
    """A path that is not a plain path inside the folder."""


class Missing(ReachError):
    """Nothing at that path."""


class Conflict(ReachError):
    """Something of another kind there: a file where a folder is needed, or a link."""


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # file, dir, link or other
    size: int
    modified: float


def parts(path: str) -> list[str]:
    """A relative path's steps; '', '.', '..' and absolute paths refused."""
    steps = [p for p in path.strip("/").split("/") if p] if path.strip("/") else []
    for step in steps:
        if step in (".", "..") or "\x00" in step:
            raise ReachError(f"{path[:200]!r}: a path inside the data folder, without '.' or '..'")
    return steps


@contextlib.contextmanager
def _folder(
    root: str, steps: list[str], make: bool = False, uid: int | None = None
) -> Iterator[int]:
    """An fd of the folder at `steps` under `root`, reached without following links."""
    try:
        fd = os.open(root, DIRECTORY)
    except FileNotFoundError:
        raise Missing("the function has no data folder yet (it is made at its start)") from None
    try:
        for step in steps:
            try:
                nxt = os.open(step, DIRECTORY, dir_fd=fd)
            except FileNotFoundError:
                if not make:
                    raise Missing(f"no folder {step!r} there") from None
                os.mkdir(step, 0o700, dir_fd=fd)
                nxt = os.open(step, DIRECTORY, dir_fd=fd)
                if uid is not None:
                    os.fchown(nxt, uid, uid)
            except OSError as exc:  # ENOTDIR, or ELOOP for a link
                raise Conflict(f"{step!r} is not a folder (a link is never followed)") from exc
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def _plainly(action: Callable[..., T]) -> Callable[..., T]:
    """What the system refuses (a name too long, a full disk) as a ReachError."""

    @functools.wraps(action)
    def done(root: str, path: str, *args: Any) -> T:
        try:
            return action(root, path, *args)
        except ReachError:
            raise
        except OSError as exc:
            raise ReachError(f"{path[:200]!r}: {exc.strerror}") from exc

    return done


@_plainly
def listing(root: str, path: str) -> list[Entry] | None:
    """The entries of the folder at `path`, or None if `path` is a file."""
    steps = parts(path)
    with _folder(root, steps[:-1]) as parent:
        name = steps[-1] if steps else None
        if name is not None:
            info = _stat(parent, name)
            if not stat.S_ISDIR(info.st_mode):
                return None
        with _folder(root, steps) as fd:
            entries = []
            for entry in sorted(os.listdir(fd)):
                info = os.stat(entry, dir_fd=fd, follow_symlinks=False)
                entries.append(Entry(entry, _kind(info.st_mode), info.st_size, info.st_mtime))
            return entries


@_plainly
def read(root: str, path: str, limit: int) -> bytes:
    """The file at `path` (at most `limit` bytes)."""
    steps = parts(path)
    if not steps:
        raise ReachError("name a file")
    with _folder(root, steps[:-1]) as parent:
        try:
            fd = os.open(steps[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except FileNotFoundError:
            raise Missing(f"no file {path!r}") from None
        except OSError as exc:  # ELOOP: a link
            raise Conflict(f"{path[:200]!r} cannot be read: {exc.strerror}") from exc
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Conflict(f"{path[:200]!r} is not a file")
            data = fh.read(limit + 1)
    if len(data) > limit:
        raise ReachError(f"{path!r} is over {limit} bytes")
    return data


@_plainly
def write(root: str, path: str, data: bytes, uid: int | None) -> None:
    """Put `data` at `path` (folders made as needed), owned by `uid`; all or nothing."""
    steps = parts(path)
    if not steps:
        raise ReachError("name a file")
    with _folder(root, steps[:-1], make=True, uid=uid) as parent:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.stat(steps[-1], dir_fd=parent, follow_symlinks=False).st_mode):
                raise Conflict(f"{path[:200]!r} is a folder")
        staging = f".hearth-upload-{secrets.token_hex(8)}"  # any name may be 255 bytes
        fd = os.open(
            staging,
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=parent,
        )
        try:
            if uid is not None:
                os.fchown(fd, uid, uid)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.rename(staging, steps[-1], src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(staging, dir_fd=parent)
            raise


def _stat(parent: int, name: str) -> os.stat_result:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        raise Missing(f"no {name!r} there") from None


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"
