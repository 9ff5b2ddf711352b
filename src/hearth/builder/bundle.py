"""Bundles: a function folder as a reproducible tar.gz, and the checks on what one holds.

Packing is deterministic (sorted names, zeroed times and owners), so the same folder
always has the same sha256 and a re-deploy of unchanged code is recognised.

Unpacking never happens in the daemon: `hearth.builder.unpack` does it in a child process
with resource limits. The checks on member names and links are pure and live here.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import tarfile
from collections.abc import Sequence
from pathlib import Path

SKIP_DIRS = frozenset(
    {".git", ".hg", ".venv", "venv", "__pycache__", ".hearth", "node_modules", ".mypy_cache"}
)
SKIP_SUFFIXES = (".pyc", ".pyo")
MAX_COMPONENT = 255  # bytes in one file or folder name (NAME_MAX on Linux)
MAX_PATH = 1024  # bytes in a member's whole path, and in a link's target
SMALL_TEXT = 64 * 1024  # hearth.toml and requirements.txt are read whole, so they are capped


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


def bundle_sha(data: bytes) -> str:
    """The name a bundle is stored under."""
    return hashlib.sha256(data).hexdigest()


def _walk(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        base = Path(root)
        found.extend(base / d for d in dirs)
        found.extend(base / f for f in sorted(files) if not f.endswith(SKIP_SUFFIXES))
    return sorted(found)


def check_members(members: Sequence[tarfile.TarInfo]) -> None:
    """Refuse anything that would not unpack into the same plain tree on every system."""
    kinds: dict[str, bool] = {}  # normalised path -> is a folder
    for member in members:
        name = member.name
        check_member_name(name)
        if member.issym() or member.islnk():
            check_link(name, member.linkname, hard=member.islnk())
        elif not (member.isfile() or member.isdir()):
            raise BundleError(f"bundle member {name!r} is not a file, folder or link")
        path = posixpath.normpath(name.replace("\\", "/"))
        if path == ".":
            if not member.isdir():
                raise BundleError(f"bundle member {name!r} has no name")
            continue
        if path in kinds:
            raise BundleError(f"bundle member {path!r} appears twice; pack the folder again")
        kinds[path] = member.isdir()
    for path in kinds:
        parent = posixpath.dirname(path)
        while parent:
            if kinds.get(parent) is False:
                raise BundleError(
                    f"bundle member {parent!r} is a file, but {path!r} puts it in a folder "
                    "of that name"
                )
            parent = posixpath.dirname(parent)


def check_member_name(name: str) -> None:
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise BundleError(f"bundle member {name!r} has an absolute path")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise BundleError(f"bundle member {name!r} contains '..'")
    if _size(name) > MAX_PATH:
        raise BundleError(
            f"bundle member {_short(name)} has a path of {_size(name)} bytes; "
            f"the limit is {MAX_PATH}"
        )
    for part in parts:
        if _size(part) > MAX_COMPONENT:
            raise BundleError(
                f"bundle member {_short(name)} has a name of {_size(part)} bytes "
                f"({_short(part)}); file and folder names are limited to {MAX_COMPONENT} bytes"
            )


def check_link(name: str, target: str, hard: bool) -> None:
    kind = "hard link" if hard else "symlink"
    if target.startswith("/"):
        raise BundleError(f"{kind} {name!r} points to an absolute path {target!r}")
    if _size(target) > MAX_PATH:
        raise BundleError(f"{kind} {name!r} has a target of more than {MAX_PATH} bytes")
    base = "" if hard else posixpath.dirname(name)
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        raise BundleError(f"{kind} {name!r} points outside the bundle ({target!r})")


def read_small_text(path: Path, limit: int = SMALL_TEXT) -> str | None:
    """The UTF-8 text of a small file of unpacked code; None if there is no such file."""
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BundleError(f"cannot read {path.name} from the bundle: {exc.strerror}") from exc
    if len(data) > limit:
        raise BundleError(
            f"{path.name} is larger than {limit // 1024} KiB; it should be a short text file"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BundleError(
            f"{path.name} is not UTF-8 text (byte {data[exc.start]:#04x} on line {line}); "
            "save it as UTF-8"
        ) from exc


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _short(text: str, keep: int = 60) -> str:
    return repr(text) if len(text) <= keep else repr(text[:keep] + "...")
