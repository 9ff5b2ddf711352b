"""The access log's writer: a process of its own that turns finished requests into JSON
lines in each function's rotated file.

At tens of thousands of requests a second, formatting lines is what costs; here it runs
beside the daemon instead of on its event loop. The daemon sends, once a second, a frame
on this process's stdin: a 4-byte little-endian length, then a `marshal`led list of
`hearth.gateway.meter.Finished` tuples, or ("forget", NAME) when a function is removed.
EOF on stdin (the daemon stopped, or died) ends it.

    python -m hearth.metrics.writer FOLDER
"""

from __future__ import annotations

import marshal
import re
import sys
import time
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, BinaryIO

from hearth.gateway.meter import Finished
from hearth.supervisor.logs import LogBook

FUNCTION = Finished._fields.index("function")
_LINE = (
    b'{"time":"%b.%03dZ","request_id":%b,"traceparent":"00-%b-%b-%b","method":"%b",'
    b'"path":%b,"status":%d,"bytes_in":%d,"bytes_out":%d,"duration_ms":%.3f,'
    b'"queue_ms":%.3f,"instance":%b,"version":%d,"client":"%b"}\n'
)
# What a JSON string may not hold as is (then the json module's encoder escapes it).
_UNSAFE = re.compile(rb'["\\\x00-\x1f\x7f-\xff]')


def _string(value: bytes) -> bytes:
    """`value` as a JSON string: as it is, unless it holds what must be escaped."""
    if _UNSAFE.search(value) is None:
        return b'"%b"' % value
    return encode_basestring_ascii(value.decode("latin-1")).encode()


class Lines:
    """Finished requests as JSON lines (bytes); the time of day is formatted once a
    second."""

    def __init__(self) -> None:
        self._second = -1
        self._stamp = b""
        self._instances: dict[str | None, bytes] = {None: b"null"}

    def line(self, record: tuple[Any, ...]) -> bytes:
        """One line from a Finished as the gateway made it (a plain tuple, unpacked
        here: faster than the names)."""
        (at, took, waited, status, into, out, method, url, request_id, trace, span) = record[:11]
        flags, instance, client, version = record[12], record[13], record[14], record[16]
        second = int(at)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        return _LINE % (
            self._stamp,
            int((at - second) * 1000),
            b'"%b"' % trace if request_id == trace else _string(request_id),
            trace,
            span,
            flags,
            method,  # a method token: no quote nor backslash
            _string(url),
            status,
            into,
            out,
            took * 1000,
            waited * 1000,
            self._instance(instance),
            version,
            client,
        )

    def _instance(self, instance: str | None) -> bytes:
        shown = self._instances.get(instance)
        if shown is None:
            if len(self._instances) > 10_000:
                self._instances = {None: b"null"}
            shown = self._instances[instance] = _string(str(instance).encode())
        return shown


def serve(stream: BinaryIO, book: LogBook) -> None:
    lines = Lines()
    while True:
        head = stream.read(4)
        if len(head) < 4:
            return
        message: Any = marshal.loads(stream.read(int.from_bytes(head, "little")))
        if isinstance(message, tuple) and message[:1] == ("forget",):
            book.forget(message[1])
            continue
        batches: dict[str, list[bytes]] = {}
        for record in message:
            function = record[FUNCTION]
            batch = batches.get(function)
            if batch is None:
                batch = batches[function] = []
            batch.append(lines.line(record))
        for function, batch in batches.items():
            book.append_bytes(function, b"".join(batch))


def main(argv: list[str]) -> None:
    book = LogBook(Path(argv[0]))
    try:
        serve(sys.stdin.buffer, book)
    finally:
        book.close()


if __name__ == "__main__":
    main(sys.argv[1:])
