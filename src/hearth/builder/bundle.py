"""Bundles: a function folder as a reproducible tar.gz, and its safe extraction.

Packing is deterministic (sorted names, zeroed times and owners), so the same folder
always has the same sha256 and a re-deploy of unchanged code is recognised.
"""

from __future__ import annotations

import gzip
import io
import os
import posixpath
import tarfile
import zlib
from pathlib import Path

SKIP_DIRS = frozenset(
    {".git", ".hg", ".venv", "venv", "__pycache__", ".hearth", "node_modules", ".mypy_cache"}
)
SKIP_SUFFIXES = (".pyc", ".pyo")


class BundleError(ValueError):
    """The bundle is unsafe or malformed; nothing was written."""


def pack(folder: Path) -> bytes:
    folder = folder.resolve()
    if not folder.is_dir():
        raise BundleError(f"{folder} is not a folder")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _walk(folder):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(folder).as_posix())
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isfile():
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    return gzip.compress(raw.getvalue(), mtime=0)


def _walk(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        base = Path(root)
        found.extend(base / d for d in dirs)
        found.extend(base / f for f in sorted(files) if not f.endswith(SKIP_SUFFIXES))
    return sorted(found)


def extract(data: bytes, dest: Path, max_unpacked: int) -> None:
    """Validate every member, then unpack into `dest` (an empty folder)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            members = tar.getmembers()
            _check(members, max_unpacked)
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise BundleError(f"the bundle is not a readable tar.gz archive ({exc})") from exc


def _check(members: list[tarfile.TarInfo], max_unpacked: int) -> None:
    total = 0
    for member in members:
        name = member.name
        check_member_name(name)
        if member.issym() or member.islnk():
            check_link(name, member.linkname, hard=member.islnk())
        elif not (member.isfile() or member.isdir()):
            raise BundleError(f"bundle member {name!r} is not a file, folder or link")
        total += member.size
        if total > max_unpacked:
            raise BundleError(f"the bundle unpacks to more than the limit of {max_unpacked} bytes")


def check_member_name(name: str) -> None:
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise BundleError(f"bundle member {name!r} has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise BundleError(f"bundle member {name!r} contains '..'")


def check_link(name: str, target: str, hard: bool) -> None:
    kind = "hard link" if hard else "symlink"
    if target.startswith("/"):
        raise BundleError(f"{kind} {name!r} points to an absolute path {target!r}")
    base = "" if hard else posixpath.dirname(name)
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        raise BundleError(f"{kind} {name!r} points outside the bundle ({target!r})")
