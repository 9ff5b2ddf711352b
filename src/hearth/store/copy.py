"""A backup's copy of one function's data folder, made as the function itself.

The data folder is the tenant's: whatever it holds may change while it is read (a file
swapped for a link to the daemon's secret key between a look and an open), and its SQLite
files are parsed by whoever copies them. So the daemon does not read it as root: a child
process under the function's own uid and sandbox (`python -m hearth.sandbox.run POLICY
python -m hearth.store.copy FOLDER TARGET`) copies what the function itself could read into
TARGET (SQLite databases through the online backup API, so a busy one is consistent; other
regular files as they are; links and special files left out), and prints what it left
out. The daemon archives TARGET, which only that child wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

SQLITE_HEADER = b"SQLite format 3\x00"
SIDE_FILES = ("-wal", "-shm", "-journal")  # a database's own, read through it
TIMEOUT = 3600.0


class CopyError(RuntimeError):
    """The copy could not be made; the message says why."""


def copy_folder(folder: Path, target: Path, label: str = "") -> list[str]:
    """Copy the regular files under `folder` into `target` (which exists); what was left
    out, each as `label/relative path[: reason]`."""
    skipped: list[str] = []

    def unreadable(error: OSError) -> None:
        skipped.append(f"{label}/{str(error.filename)[-200:]}: {error.strerror}")

    for root, dirs, names in os.walk(folder, onerror=unreadable, followlinks=False):
        here = Path(root)
        for name in sorted(names):
            path = here / name
            relative = path.relative_to(folder).as_posix()
            if relative.endswith(SIDE_FILES):
                continue
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:  # removed meanwhile: it is not there
                continue
            except OSError as exc:  # a path longer than the system's limit, say
                skipped.append(f"{label}/{relative[:200]}: {exc.strerror}")
                continue
            if not stat.S_ISREG(mode):
                skipped.append(f"{label}/{relative}")
                continue
            dest = target / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                _copy_file(path, dest)
            except FileNotFoundError:
                continue
            except (OSError, sqlite3.Error) as exc:
                skipped.append(f"{label}/{relative[:200]}: {getattr(exc, 'strerror', exc)}")
        for name in list(dirs):
            if os.path.islink(here / name):  # False too when it cannot be looked at
                skipped.append(f"{label}/{(here / name).relative_to(folder).as_posix()}")
                dirs.remove(name)
        dirs.sort()
    return skipped


def _copy_file(source: Path, dest: Path) -> None:
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(0, "not a regular file")
        head = fh.read(len(SQLITE_HEADER))
        if head != SQLITE_HEADER:
            with dest.open("wb") as out:
                out.write(head)
                shutil.copyfileobj(fh, out)
            return
    try:
        sqlite_copy(source, dest)
    except sqlite3.Error:  # not a database after all (or a damaged one): its bytes
        dest.unlink(missing_ok=True)
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh, dest.open("wb") as out:
            shutil.copyfileobj(fh, out)


def sqlite_copy(source: Path, dest: Path) -> None:
    """A consistent copy of a database that may be written meanwhile (read-only)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(dest)
        try:
            src.backup(target)
        finally:
            target.close()
    finally:
        src.close()


def copy_as(policy: dict[str, Any], folder: Path, target: Path, label: str) -> list[str]:
    """`copy_folder` in a child process under `policy`; what it left out."""
    runner = [sys.executable, "-m", "hearth.sandbox.run", json.dumps(policy)]
    argv = [*runner, sys.executable, "-m", "hearth.store.copy", str(folder), str(target), label]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CopyError(f"copying the data of {label} took over {TIMEOUT:.0f}s") from exc
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise CopyError(f"copying the data of {label} failed: {' '.join(said)}")
    skipped = json.loads(done.stdout)
    return [str(line) for line in skipped]


def main(argv: list[str]) -> None:
    folder, target, label = Path(argv[0]), Path(argv[1]), argv[2]
    json.dump(copy_folder(folder, target, label), sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
