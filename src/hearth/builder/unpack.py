"""Unpack a bundle in a child process: scan the raw stream, check the members, extract.

The daemon's event loop also serves every HTTP request, so a hostile archive must never be
parsed there: `tarfile` holds the GIL while it reads a header, and believes the sizes a
header declares. The daemon runs `python -m hearth.builder.unpack ARCHIVE DEST LIMIT`
(`hearth.store.bundles.unpack`); this module is that child, and imports little so that it
starts fast. It sets its resource limits before it reads a byte, then

1. scans the gzip stream itself, decompressing a bounded piece at a time and reading only
   the 512-byte tar headers (data blocks are skipped, never kept): this refuses oversized
   pax or GNU long-name headers, too many members, declared sizes over the limit, and a
   stream that decompresses to far more than its members need (a gzip bomb);
2. only then lets `tarfile` list the members, and checks every name and link
   (`bundle.check_members`);
3. extracts with tarfile's "data" filter.

A refusal is one line on stderr and exit code `EXIT_REFUSED`; the parent turns any
failure (exit code or signal) into a `BundleError` with a message a person can act on.

The scanner is written by hand (it is Hearth's own defence); it follows tarfile's framing
(which headers are followed by data blocks, and how a pax "size" record moves the next
header), and refuses whatever it does not mirror exactly.
"""

from __future__ import annotations

import os
import re
import resource
import struct
import sys
import tarfile
import zlib
from pathlib import Path
from typing import BinaryIO, NamedTuple

from hearth.builder.bundle import BundleError, check_members

BLOCK = 512
CHUNK = 64 * 1024
EXIT_REFUSED = 3  # the bundle is unsafe or malformed; the reason is on stderr
EXIT_NO_MEMORY = 4
EXIT_WRITE_FAILED = 5  # the code could not be written (a name the file system refuses, ...)
ZERO_BLOCK = bytes(BLOCK)
REGULAR = frozenset({b"0", b"\0", b"7"})  # followed by `size` bytes of data
MEMBER = REGULAR | {b"1", b"2", b"5"}  # hard link, symlink, folder: no data follows
PAX = frozenset({b"x", b"g"})
GNU_LONG = frozenset({b"L", b"K"})
PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")  # the same pattern tarfile uses


class Limits(NamedTuple):  # a NamedTuple, not a dataclass: `dataclasses` slows the child's start
    max_unpacked: int  # total bytes of all files once unpacked
    max_members: int = 10_000
    max_header: int = 64 * 1024  # bytes in one pax or GNU long-name header
    slack: int = 32 * 1024 * 1024  # tar headers and padding, on top of the files
    memory: int = 1 << 30  # RLIMIT_AS of the child
    cpu_seconds: int = 60  # RLIMIT_CPU of the child
    open_files: int = 64  # RLIMIT_NOFILE of the child
    timeout: float = 90.0  # wall clock, then the parent kills the child

    @property
    def max_stream(self) -> int:
        return self.max_unpacked + self.slack


class Scan(NamedTuple):
    members: int
    unpacked: int  # bytes of file data
    stream: int  # bytes of the decompressed tar stream


def main(argv: list[str]) -> int:
    archive, dest, max_unpacked = Path(argv[0]), Path(argv[1]), int(argv[2])
    limits = Limits(max_unpacked)
    confine(limits)  # before the archive is opened
    try:
        extract(archive, dest, limits)
    except BundleError as exc:
        print(" ".join(str(exc).split()), file=sys.stderr)
        return EXIT_REFUSED
    except MemoryError:
        return EXIT_NO_MEMORY
    except OSError as exc:
        where = Path(str(exc.filename or dest))
        shown = where.relative_to(dest) if where.is_relative_to(dest) else where
        print(f"{exc.strerror or exc} ({shown})", file=sys.stderr)
        return EXIT_WRITE_FAILED
    return 0


def confine(limits: Limits) -> None:
    """Resource limits for this process, in a fixed order; any failure aborts the child."""
    for which, value in (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_AS, limits.memory),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_FSIZE, limits.max_unpacked),
        (resource.RLIMIT_NOFILE, limits.open_files),
    ):
        _soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))


def extract(archive: Path, dest: Path, limits: Limits) -> Scan:
    """Scan, check, then unpack `archive` (a tar.gz file) into the empty folder `dest`."""
    with archive.open("rb") as raw:
        scan = scan_stream(raw, limits)
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members = tar.getmembers()
            if len(members) != scan.members:  # the scan mirrors tarfile; never trust a doubt
                raise BundleError("the bundle's tar headers are ambiguous; pack it again")
            check_members(members)
            tar.extractall(dest, filter="data")
        readable_by_all(dest)
    except tarfile.FilterError as exc:
        raise BundleError(f"the bundle was refused: {exc}") from exc
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise BundleError(f"the bundle is not a readable tar.gz archive ({exc})") from exc
    return scan


def readable_by_all(root: Path) -> None:
    """Code is read by functions under their own uid, and written by nobody after this:
    folders 0755, files 0644 (0755 when executable by their owner), whatever was packed."""
    os.chmod(root, 0o755)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                executable = os.stat(path).st_mode & 0o100
                os.chmod(path, 0o755 if executable else 0o644)


def scan_stream(raw: BinaryIO, limits: Limits) -> Scan:
    """Walk the tar headers of a gzip stream without tarfile, keeping nothing but counts."""
    stream = _Gunzip(raw, limits.max_stream)
    members = unpacked = 0
    pax_size: int | None = None
    pending: set[bytes] = set()  # extension headers seen for the next member
    while True:
        header = stream.read(BLOCK)
        if not header and not pending:
            break  # no end-of-archive blocks: tarfile stops here too
        if len(header) < BLOCK:
            raise BundleError("the bundle is not a readable tar.gz archive (it is truncated)")
        if header == ZERO_BLOCK:
            if pending:
                raise BundleError("the bundle ends in the middle of a member; pack it again")
            break
        kind, name, size = _header(header)
        if kind in PAX or kind in GNU_LONG:
            what = "pax" if kind in PAX else "GNU long-name"
            if size > limits.max_header:
                raise BundleError(
                    f"the bundle has a {what} header of {size} bytes; the limit is "
                    f"{limits.max_header} (a tar header bomb?)"
                )
            data = stream.read(_blocks(size))[:size]
            if kind == b"g":
                _check_global(_pax_records(data))
                continue
            if kind in pending:
                raise BundleError(f"the bundle has two {what} headers for one member")
            pending.add(kind)
            if kind == b"x":
                pax_size = _pax_size(_pax_records(data), pax_size)
            continue
        members += 1
        if members > limits.max_members:
            raise BundleError(
                f"the bundle has more than {limits.max_members} files and folders; "
                "leave out what the function does not need"
            )
        if kind not in MEMBER:
            raise BundleError(f"bundle member {name!r} is not a file, folder or link")
        if kind in REGULAR and not (kind == b"\0" and name.endswith("/")):
            length = size if pax_size is None else pax_size
            unpacked += length
            if unpacked > limits.max_unpacked:
                raise BundleError(
                    f"the bundle unpacks to more than the limit of {limits.max_unpacked} bytes"
                )
            stream.skip(_blocks(length))
        pending.clear()
        pax_size = None
    stream.drain()  # end-of-archive padding; a bomb of zeros after it is refused here
    return Scan(members, unpacked, stream.total)


def _header(block: bytes) -> tuple[bytes, str, int]:
    """The type, name and size of a header block; refuse what tarfile would misread."""
    stored = _number(block[148:156])
    unsigned = 256 + sum(struct.unpack_from("148B8x356B", block))
    signed = 256 + sum(struct.unpack_from("148b8x356b", block))
    if stored not in (unsigned, signed):
        raise BundleError("the bundle is not a readable tar.gz archive (bad header checksum)")
    name = block[0:100].split(b"\0", 1)[0].decode("utf-8", "replace")
    size = _number(block[124:136])
    if size < 0:
        raise BundleError(f"bundle member {name!r} has a negative size")
    return block[156:157], name, size


def _number(field: bytes) -> int:
    """A tar number field: octal text, or GNU base-256 (first byte 0x80 or 0xff)."""
    if field[0] in (0o200, 0o377):
        value = int.from_bytes(field[1:], "big")
        return value - 256 ** (len(field) - 1) if field[0] == 0o377 else value
    try:
        return int(field.split(b"\0", 1)[0].decode("ascii").strip() or "0", 8)
    except (UnicodeDecodeError, ValueError):
        raise BundleError("the bundle is not a readable tar.gz archive (bad header)") from None


def _pax_records(data: bytes) -> dict[str, str]:
    """The records of a pax header, parsed as tarfile parses them."""
    records: dict[str, str] = {}
    pos = 0
    while match := PAX_RECORD.match(data, pos):
        length = int(match.group(1))
        if length == 0:
            raise BundleError("the bundle has an invalid pax header")
        value = data[match.end(2) + 1 : match.start(1) + length - 1]
        records[match.group(2).decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        pos += length
    return records


def _pax_size(records: dict[str, str], previous: int | None) -> int | None:
    if any(key.startswith("GNU.sparse") for key in records):
        raise BundleError("the bundle holds a sparse file; pack it with plain files")
    if "size" not in records:
        return previous
    try:
        size = int(records["size"])
    except ValueError:
        raise BundleError("the bundle has a pax header with an invalid size") from None
    if size < 0:
        raise BundleError("the bundle has a pax header with a negative size")
    return size


def _check_global(records: dict[str, str]) -> None:
    # tarfile applies a global "size" to members without moving to the next header by it.
    if "size" in records or any(key.startswith("GNU.sparse") for key in records):
        raise BundleError("the bundle has a global pax header that changes sizes; pack it again")


def _blocks(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


class _Gunzip:
    """A gzip stream decompressed a bounded piece at a time; refuses past `limit` bytes."""

    def __init__(self, raw: BinaryIO, limit: int) -> None:
        self.raw = raw
        self.limit = limit
        self.total = 0
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._input = b""
        self._buffer = b""
        self._pos = 0
        self._eof = False

    def read(self, size: int) -> bytes:
        while len(self._buffer) - self._pos < size and self._more():
            pass
        data = self._buffer[self._pos : self._pos + size]
        self._pos += len(data)
        return data

    def skip(self, size: int) -> None:
        while size > 0:
            if self._pos == len(self._buffer) and not self._more():
                raise BundleError("the bundle is not a readable tar.gz archive (it is truncated)")
            taken = min(size, len(self._buffer) - self._pos)
            self._pos += taken
            size -= taken

    def drain(self) -> None:
        while self._more():
            self._pos = len(self._buffer)

    def _more(self) -> bool:
        """Decompress at most CHUNK more bytes into the buffer; False at the end."""
        while not self._eof:
            if not self._input:
                self._input = self.raw.read(CHUNK)
                if not self._input:
                    if not self._inflate.eof:
                        raise BundleError(
                            "the bundle is not a readable tar.gz archive (it is truncated)"
                        )
                    self._eof = True
                    return False
            if self._inflate.eof:  # another gzip member follows, or zero padding
                rest = self._input.lstrip(b"\0")
                self._input = rest
                if not rest:
                    continue
                self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                out = self._inflate.decompress(self._input, CHUNK)
            except zlib.error as exc:
                raise BundleError(f"the bundle is not a readable tar.gz archive ({exc})") from exc
            self._input = self._inflate.unconsumed_tail or self._inflate.unused_data
            if out:
                self.total += len(out)
                if self.total > self.limit:
                    raise BundleError(
                        f"the bundle decompresses to more than {self.limit} bytes, far more "
                        "than its files need (a compression bomb?)"
                    )
                self._buffer = self._buffer[self._pos :] + out
                self._pos = 0
                return True
        return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
