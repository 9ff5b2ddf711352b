"""Bundles on disk, addressed by the sha256 of their bytes, and their unpacked code."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from hearth.builder.bundle import extract


class BundleStore:
    def __init__(self, root: Path) -> None:
        self.archives = root / "bundles"
        self.code = root / "code"
        self.archives.mkdir(parents=True, exist_ok=True)
        self.code.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes, max_unpacked: int) -> tuple[str, Path]:
        """Store and unpack a bundle (validated first); return its sha256 and code folder."""
        sha = hashlib.sha256(data).hexdigest()
        code = self.code / sha
        if not code.exists():
            staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=self.code))
            try:
                extract(data, staging, max_unpacked)
                os.replace(staging, code)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        archive = self.archives / f"{sha}.tar.gz"
        if not archive.exists():
            tmp = archive.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, archive)
        return sha, code

    def path(self, sha: str) -> Path:
        """The unpacked code of a stored bundle (unpacked again if it went missing)."""
        code = self.code / sha
        if not code.exists():
            self.put((self.archives / f"{sha}.tar.gz").read_bytes(), 1 << 40)
        return code
