"""A disk of its own for each function: `HEARTH_DATA` is an ext4 filesystem in an image
file of `limits.disk` bytes, so filling it fills that function's disk and nobody else's.

The daemon (root) runs in a mount namespace of its own (`own_namespace`), where it mounts
each function's image on `functions/NAME/data`; the function's zygote copies that view.
The namespace dies with the daemon and its last process, and the kernel then unmounts the
images and frees their loop devices: a killed daemon leaves no mount behind on the host.
The images are sparse: a function's disk costs what it holds. A disk grows when
`limits.disk` is raised: in place where the host allows it (CAP_SYS_RESOURCE), otherwise
when it is next mounted. It never shrinks (that would need the function stopped).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess
from pathlib import Path

from hearth.sandbox import mounts
from hearth.units import format_size

IMAGE = "disk.img"


class DiskError(RuntimeError):
    """A function's disk could not be made ready (the message says why, for the deployer)."""


def available() -> bool:
    """Can this host give each function a disk (root, loop devices, mkfs.ext4)?"""
    return (
        os.geteuid() == 0
        and os.path.exists("/dev/loop-control")
        and all(shutil.which(tool) for tool in ("mkfs.ext4", "e2fsck", "resize2fs", "losetup"))
    )


def own_namespace() -> None:
    """Put the daemon in a mount namespace of its own, sharing nothing back to the host.
    Call before any thread starts (unshare refuses a process whose threads share its
    filesystem context)."""
    mounts.unshare(mounts.CLONE_NEWNS)
    mounts.mount(None, "/", None, mounts.MS_REC | mounts.MS_PRIVATE)


class Disks:
    """The functions' disks of one daemon, under `DATA_DIR/functions`."""

    def __init__(self, functions_dir: Path) -> None:
        self.dir = functions_dir
        self._full: set[str] = set()
        self._mounted: set[str] = set()  # by this daemon, in its namespace
        self.notes: list[tuple[str, str]] = []  # (function, what its deployer should know)

    def folder(self, function: str) -> Path:
        return self.dir / function / "data"

    def check(self, function: str, size: int) -> None:
        """Refuse a new version whose `limits.disk` is below the disk the function has."""
        image = self.dir / function / IMAGE
        current = image.stat().st_size if image.exists() else 0
        if size < current:
            raise DiskError(
                f"limits.disk = {format_size(size)!r} is smaller than the function's disk "
                f"({format_size(current)}): a disk only grows; keep {format_size(current)} "
                f"or more (`hearth rm` and a new name start afresh)"
            )

    def ready(self, function: str, size: int, uid: int) -> None:
        """Mount the function's disk, owned by `uid`, on its data folder: made with `size`
        bytes on first use (taking in what the folder already held), grown when `size` is
        larger than before (never shrunk: an older version keeps the bigger disk)."""
        folder = self.folder(function)
        image = self.dir / function / IMAGE
        if not image.exists():
            self._create(image, size, uid)
            if any(folder.iterdir()):
                self._take_in(image, folder)
        current = image.stat().st_size
        if size > current:
            os.truncate(image, size)
        device = mounted_device(folder)
        if device is None:
            # Grown offline only if no one (say, a killed daemon's last process) still
            # holds it; the mount below then shares that holder's loop device.
            if filesystem_size(image) < image.stat().st_size and not _attached(image):
                _run("e2fsck", "-f", "-p", str(image))  # resize2fs wants a fresh check
                _run("resize2fs", str(image))
            _run("mount", "-o", "loop,nosuid,nodev", str(image), str(folder))
        elif size > current:
            self._grow_online(function, device, size)
        os.chown(folder, uid, uid)
        os.chmod(folder, 0o700)
        self._mounted.add(function)

    def _grow_online(self, function: str, device: str, size: int) -> None:
        try:
            _run("losetup", "--set-capacity", device)
            _run("resize2fs", device)
        except DiskError as exc:  # e.g. no CAP_SYS_RESOURCE in a container
            self.notes.append(
                (
                    function,
                    f"the disk grows to {format_size(size)} when it is next mounted (at the "
                    f"daemon's next start): this host refused to grow it in use ({exc})",
                )
            )

    def release(self, function: str) -> None:
        """Unmount the function's disk (its image, the data, stays)."""
        self._full.discard(function)
        self._mounted.discard(function)
        if mounted_device(self.folder(function)) is not None:
            mounts.umount(str(self.folder(function)))

    def newly_full(self, function: str) -> bool:
        """True once each time the function's disk runs out of space (a statvfs: cheap
        enough for every function every second)."""
        if function not in self._mounted:
            return False
        stats = os.statvfs(self.folder(function))
        # Full: what a write may still take is below 1% of the disk (at least 1 MiB).
        full = stats.f_bavail < max(stats.f_blocks // 100, 2**20 // stats.f_frsize)
        if not full:
            self._full.discard(function)
            return False
        if function in self._full:
            return False
        self._full.add(function)
        return True

    def _create(self, image: Path, size: int, uid: int) -> None:
        staging = image.with_suffix(".new")
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        _run(
            "mkfs.ext4",
            "-q",
            "-F",
            "-m",
            "0",  # no blocks reserved for root: the function gets the whole size
            "-E",
            f"lazy_itable_init=1,lazy_journal_init=1,root_owner={uid}:{uid}",
            str(staging),
        )
        os.replace(staging, image)

    def _take_in(self, image: Path, folder: Path) -> None:
        """Move what the folder held before it had a disk onto the disk."""
        staging = image.parent / ".disk-mount"
        staging.mkdir(mode=0o700, exist_ok=True)
        _run("mount", "-o", "loop,nosuid,nodev", str(image), str(staging))
        try:
            _run("cp", "-a", f"{folder}/.", str(staging))
        finally:
            mounts.umount(str(staging))
            staging.rmdir()
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def mounted_device(folder: Path) -> str | None:
    """The device mounted on `folder` in this mount namespace, if any."""
    target = os.path.realpath(folder)
    device = None
    with open("/proc/self/mountinfo") as fh:
        for line in fh:  # the last mount on a folder is the one seen there
            fields = line.split()
            if _unescape(fields[4]) == target:
                device = fields[fields.index("-") + 2]
    return device


def filesystem_size(image: Path) -> int:
    """The size of the ext4 filesystem in `image`, from its superblock."""
    with open(image, "rb") as fh:
        fh.seek(1024)
        block = fh.read(1024)

    def field(offset: int) -> int:
        return int(struct.unpack_from("<I", block, offset)[0])

    count_lo, log_size, incompat = field(4), field(24), field(0x60)
    count_hi = field(0x150) if incompat & 0x80 else 0  # the 64bit feature
    return (count_hi << 32 | count_lo) * (1024 << log_size)


def _attached(image: Path) -> bool:
    result = subprocess.run(
        ["losetup", "-j", str(image)], capture_output=True, text=True, timeout=30
    )
    return bool(result.stdout.strip())


def _unescape(path: str) -> str:
    return path.encode().decode("unicode_escape") if "\\" in path else path


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise DiskError(f"{argv[0]} failed: {detail[-1] if detail else result.returncode}")
