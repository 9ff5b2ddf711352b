"""Backups: one archive of everything a data directory needs to serve again, taken while
it serves; and the restore of one into a new data directory.

The archive is a gzipped tar:

    manifest.json            Hearth's version, the schema, when, and every member's size
                             and SHA-256 (written last: a truncated archive has none)
    state/hearth.db          the state database, by SQLite's online backup API
    state/secret.key         the key that opens the sealed secrets (when it is a file)
    bundles/SHA.tar.gz       every version's code, as deployed (environments are rebuilt
                             from the requirements inside)
    data/NAME/...            each function's data folder; its SQLite databases by the
                             backup API (consistent while the function writes), other
                             files as they are; links and special files are left out
    kv/NAME/snapshot.rdb     each running KV server's store, a snapshot the server took
                             (BGSAVE) while serving; or, for one not running, its
    kv/NAME/appendonlydir/.. append-only files as they are

Restore checks the whole archive against its manifest before it writes anything, into a
data directory that must not exist yet (or be empty).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import hearth
from hearth.store.copy import copy_folder, sqlite_copy
from hearth.store.migrations import LATEST

Copier = Callable[[str, Path, Path], list[str]]

UID_BASE = 200_000  # as hearth.sandbox.plan: restored data belongs to its function's uid
# As hearth.kv.server: a snapshot is restored as the base of a KV server's append-only files.
AOF_DIR = "appendonlydir"
AOF_BASE = "appendonly.aof.1.base.rdb"
AOF_MANIFEST = "appendonly.aof.manifest"


class BackupError(RuntimeError):
    """The archive cannot be made or restored; the message says why."""


@dataclass
class Taken:
    path: Path
    size: int
    members: int
    skipped: list[str] = field(default_factory=list)


def take(
    data_dir: Path,
    functions: list[str],
    out: Path,
    kv: Callable[[str], Path | None] = lambda function: None,
    copier: Copier | None = None,
) -> Taken:
    """Write the archive of `data_dir` to `out` (whole or not at all). Blocking: run it in
    a thread; it reads while the daemon serves. `kv(NAME)` is a snapshot of the function's
    running KV server (None when none runs). `copier(NAME, FOLDER, TARGET)` copies a
    function's data folder into TARGET and says what it left out (the daemon's runs as the
    function: `hearth.store.copy`)."""
    if copier is None:

        def copier(function: str, folder: Path, target: Path) -> list[str]:
            return copy_folder(folder, target, function)

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    files: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    # Beside the data: a function's copy is written there by a child under its uid.
    work = Path(tempfile.mkdtemp(prefix=".backup-", dir=data_dir))
    try:
        # Level 1: five times the speed of the default on text, a fifth larger; on
        # incompressible data (uploads, images) the same size either way.
        with tarfile.open(partial, "w:gz", compresslevel=1) as tar:

            def add(name: str, source: Path, snapshot: bool = False) -> None:
                if snapshot:  # a file the function may be writing: one copy, then that
                    copy = work / "file"
                    shutil.copyfile(source, copy)
                    source = copy
                digest, size = _digest(source)
                info = tar.gettarinfo(str(source), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with source.open("rb") as fh:
                    tar.addfile(info, fh)
                files[name] = {"size": size, "sha256": digest}

            state = work / "hearth.db"
            sqlite_copy(data_dir / "hearth.db", state)
            add("state/hearth.db", state)
            key = data_dir / "secret.key"
            if key.is_file():
                add("state/secret.key", key)
            for archive in sorted((data_dir / "bundles").glob("*.tar.gz")):
                add(f"bundles/{archive.name}", archive)
            for function in functions:
                folder = data_dir / "functions" / function / "data"
                if folder.is_dir():
                    copied = work / "data" / function
                    copied.mkdir(parents=True)
                    try:
                        skipped += copier(function, folder, copied)
                    except RuntimeError as exc:  # the copying child failed
                        raise BackupError(str(exc)) from exc
                    for relative, source in _walk(copied, skipped, function):
                        add(f"data/{function}/{relative}", source)
                    shutil.rmtree(copied)
                try:
                    snapshot = kv(function)
                except RuntimeError as exc:  # the KV server failed to answer or to save
                    raise BackupError(f"the KV store of {function}: {exc}") from exc
                if snapshot is not None:
                    add(f"kv/{function}/snapshot.rdb", snapshot, snapshot=True)
                    continue
                stored = data_dir / "functions" / function / "kv" / AOF_DIR
                for relative, source in _walk(stored, skipped, function):
                    add(f"kv/{function}/{AOF_DIR}/{relative}", source, snapshot=True)
            manifest = {
                "hearth": hearth.__version__,
                "schema": LATEST,
                "created": time.time(),
                "functions": functions,
                "files": files,
                "skipped": skipped,
            }
            payload = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(payload)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(payload))
        os.chmod(partial, 0o600)  # it holds the secret key
        os.replace(partial, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        partial.unlink(missing_ok=True)
    return Taken(out, out.stat().st_size, len(files), skipped)


def restore(archive: Path, data_dir: Path) -> dict[str, Any]:
    """Unpack `archive` into `data_dir` (new, or empty) after checking all of it; the
    manifest is returned."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty: restore makes a new data directory")
    try:
        manifest = _check(archive)
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError, KeyError) as exc:
        raise BackupError(f"{archive} is truncated or corrupt: {exc}") from exc
    if manifest.get("schema", 0) > LATEST:
        raise BackupError(
            f"{archive} was made by a newer Hearth (schema {manifest['schema']}, this one "
            f"knows up to {LATEST})"
        )
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=data_dir.parent))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name == "manifest.json":
                    continue
                target = staging / _destination(member.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # _check let regular files only through
                with source, target.open("wb") as fh:
                    shutil.copyfileobj(source, fh)
                os.chmod(target, 0o600)
        for snapshot in staging.glob(f"functions/*/kv/{AOF_DIR}/{AOF_BASE}"):
            (snapshot.parent / AOF_MANIFEST).write_text(f"file {AOF_BASE} seq 1 type b\n")
        _give_back(staging, manifest["functions"])
        data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(data_dir, 0o700)
        for entry in staging.iterdir():
            os.replace(entry, data_dir / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _check(archive: Path) -> dict[str, Any]:
    """Read the whole archive once: every member named by the manifest, of its size and
    digest, and nothing else."""
    digests: dict[str, tuple[int, str]] = {}
    manifest: dict[str, Any] | None = None
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not member.isfile():
                raise BackupError(f"{archive}: {member.name!r} is not a regular file")
            source = tar.extractfile(member)
            assert source is not None
            data = source.read() if member.name == "manifest.json" else None
            if data is not None:
                manifest = json.loads(data)
                continue
            _destination(member.name)  # a safe name, or BackupError
            digest = hashlib.sha256()
            size = 0
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
            digests[member.name] = (size, digest.hexdigest())
    if manifest is None:
        raise BackupError(f"{archive} has no manifest: it is truncated, or not a backup")
    listed = {name: (f["size"], f["sha256"]) for name, f in manifest["files"].items()}
    if listed != digests:
        wrong = sorted(set(listed) ^ set(digests)) or [
            name for name in listed if listed[name] != digests.get(name)
        ]
        raise BackupError(f"{archive} does not match its manifest (first: {wrong[0]!r})")
    return manifest


def _destination(name: str) -> Path:
    """Where an archive member goes in the data directory; BackupError if it would go
    anywhere unexpected."""
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("", ".", "..") for part in path.parts):
        raise BackupError(f"unsafe name in the archive: {name!r}")
    head, *rest = path.parts
    if head == "state" and rest in (["hearth.db"], ["secret.key"]):
        return Path(rest[0])
    if head == "bundles" and len(rest) == 1:
        return Path("bundles", rest[0])
    if head == "data" and len(rest) >= 2:
        return Path("functions", rest[0], "data", *rest[1:])
    if head == "kv" and len(rest) == 2 and rest[1] == "snapshot.rdb":
        return Path("functions", rest[0], "kv", AOF_DIR, AOF_BASE)
    if head == "kv" and len(rest) == 3 and rest[1] == AOF_DIR:
        return Path("functions", rest[0], "kv", *rest[1:])
    raise BackupError(f"unexpected member in the archive: {name!r}")


def _give_back(staging: Path, functions: list[str]) -> None:
    """Restored data belongs to its function's uid (as the daemon numbers them), so the
    function can go on writing it; only root can give files away."""
    if os.geteuid() != 0 or not (staging / "hearth.db").exists():
        return
    db = sqlite3.connect(staging / "hearth.db")
    try:
        numbers = dict(db.execute("select function, number from identities").fetchall())
    finally:
        db.close()
    for function in functions:
        home = staging / "functions" / function
        number = numbers.get(function)
        if number is None or not home.exists():
            continue
        uid = UID_BASE + number
        os.chmod(home, 0o711)
        for top in (home / "data", home / "kv"):
            if top.exists():
                os.chmod(top, 0o700)
            for folder, dirs, names in os.walk(top):
                os.chown(folder, uid, uid)
                for name in [*dirs, *names]:
                    os.chown(os.path.join(folder, name), uid, uid)


def _walk(folder: Path, skipped: list[str], function: str) -> Iterator[tuple[str, Path]]:
    """Regular files under `folder` (relative name, path), never following a link."""
    if not folder.is_dir():
        return

    def unreadable(error: OSError) -> None:
        skipped.append(f"{function}/{str(error.filename)[-200:]}: {error.strerror}")

    for root, dirs, names in os.walk(folder, onerror=unreadable, followlinks=False):
        here = Path(root)
        for name in sorted(names):
            path = here / name
            relative = path.relative_to(folder).as_posix()
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:  # the function removed it meanwhile
                continue
            except OSError as exc:  # a path longer than the system's limit, say
                skipped.append(f"{function}/{relative[:200]}: {exc.strerror}")
                continue
            if stat.S_ISREG(mode):
                yield relative, path
            else:
                skipped.append(f"{function}/{relative}")
        for name in list(dirs):
            if os.path.islink(here / name):  # False too when it cannot be looked at
                skipped.append(f"{function}/{(here / name).relative_to(folder).as_posix()}")
                dirs.remove(name)
        dirs.sort()


def _digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


BACKUP_NAME = "hearth-%Y%m%d-%H%M%S.tar.gz"


def rotate(folder: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` archives this schedule made; the removed."""
    made = sorted(folder.glob("hearth-*.tar.gz"))
    gone = made[: max(0, len(made) - keep)]
    for path in gone:
        path.unlink(missing_ok=True)
    return gone
