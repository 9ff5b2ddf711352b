"""A function's own view of the filesystem, made in a private mount namespace (root only).

The daemon's data directory, a Python installed under a private home (/root is 0700)
and the test folders are not traversable by a function's uid. Rather than loosen them on
the host, the function's namespace covers each untraversable top folder with an empty
tmpfs and binds back exactly the paths the function needs. It also gets a private /tmp
and a /proc that shows only its own processes (hidepid).
"""

from __future__ import annotations

import ctypes
import os
import stat
from collections.abc import Iterable

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
STASH_CANDIDATES = ("/mnt", "/media", "/srv", "/opt", "/home", "/boot")


class MountError(OSError):
    """A mount step failed."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def unshare(flags: int) -> None:
    if _libc().unshare(flags) != 0:
        _raise(f"unshare({flags:#x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    result = _libc().mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if result != 0:
        _raise(f"mount {source} on {target}")


def umount(target: str) -> None:
    """Detach the mount on `target` (lazily: it goes once nothing uses it)."""
    if _libc().umount2(target.encode(), MNT_DETACH) != 0:
        _raise(f"umount {target}")


def cover_root(path: str) -> str | None:
    """The topmost folder above `path` that other users cannot traverse; /tmp for paths in
    /tmp (it becomes private); None when `path` is reachable as it is."""
    parts = os.path.normpath(path).split("/")[1:]
    current = ""
    for part in parts[:-1]:
        current += "/" + part
        if current == "/tmp":
            return current
        try:
            mode = os.stat(current).st_mode
        except OSError:
            return None
        if not mode & stat.S_IXOTH:
            return current
    return None


def private_view(reveal: Iterable[str], tmp_size: str = "64m") -> None:
    """Enter a new mount namespace that shows `reveal` where it is, whatever its parents'
    permissions, with a private /tmp and a /proc of this uid's processes only."""
    # /tmp itself is the private tmpfs made here; what lies beneath it is revealed.
    wanted = outermost(p for p in reveal if os.path.exists(p) and os.path.normpath(p) != "/tmp")
    covers = {p: cover_root(p) for p in wanted}
    roots = sorted({r for r in covers.values() if r is not None} | {"/tmp"})
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    stash = _stash_point(roots, wanted)
    mount("hearth", stash, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=1m")
    stashed: list[tuple[str, str]] = []
    for index, path in enumerate(p for p in wanted if covers[p] is not None):
        held = f"{stash}/{index}"
        if os.path.isdir(path):
            os.mkdir(held)
        else:
            open(held, "w").close()
        mount(path, held, None, MS_BIND | MS_REC)
        stashed.append((held, path))
    for root in roots:
        mode = "1777" if root == "/tmp" else "0755"
        mount("hearth", root, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size={tmp_size}")
    for held, path in stashed:
        if os.path.isdir(held):
            os.makedirs(path, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            open(path, "w").close()
        mount(held, path, None, MS_MOVE)
    umount(stash)  # empty by now
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")


def outermost(paths: Iterable[str]) -> list[str]:
    """The paths not inside another of them, sorted (binding one covers the rest)."""
    kept: list[str] = []
    for path in sorted({os.path.normpath(p) for p in paths}):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def _stash_point(roots: list[str], wanted: list[str]) -> str:
    for candidate in STASH_CANDIDATES:
        if not os.path.isdir(candidate):
            continue
        clash = any(
            p == candidate or p.startswith(candidate + "/") or candidate.startswith(p + "/")
            for p in [*roots, *wanted]
        )
        if not clash:
            return candidate
    raise MountError(0, f"no free folder among {STASH_CANDIDATES} to prepare mounts in")


def _raise(what: str) -> None:
    errno = ctypes.get_errno()
    raise MountError(errno, f"{what}: {os.strerror(errno)}")
