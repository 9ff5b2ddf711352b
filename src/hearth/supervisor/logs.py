"""Per-function log files: every line an instance prints, with time and instance id.

Files rotate by size (`NAME.log`, `NAME.log.1`, ...). Followers get new lines through
asyncio queues, so `hearth logs -f` sees output as it is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TextIO


class LogBook:
    def __init__(self, root: Path, max_bytes: int = 10 * 1024 * 1024, keep: int = 3) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.keep = keep
        self._files: dict[str, TextIO] = {}
        self._followers: dict[str, set[asyncio.Queue[str]]] = {}

    def path(self, function: str) -> Path:
        return self.root / f"{function}.log"

    def write(self, function: str, source: str, text: str) -> None:
        now = time.time()
        stamp = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        )
        self.append(function, [f"{stamp} {source} {text}"])

    def append(self, function: str, lines: list[str]) -> None:
        """Lines (without their newline) as they are, in one write."""
        text = "\n".join(lines) + "\n"
        fh = self._file(function)
        fh.write(text)
        fh.flush()
        if fh.tell() > self.max_bytes:
            self._rotate(function)
        for queue in self._followers.get(function, ()):
            for line in lines:
                with contextlib.suppress(asyncio.QueueFull):  # a follower that lags loses lines
                    queue.put_nowait(line + "\n")

    def append_bytes(self, function: str, data: bytes) -> None:
        """Whole lines, already encoded (UTF-8 or ASCII), in one write; no followers (the
        access log's writer, a process of its own, has none: readers watch the file)."""
        fh = self._file(function)
        fh.flush()
        fh.buffer.write(data)
        fh.buffer.flush()
        if fh.tell() > self.max_bytes:
            self._rotate(function)

    def tail(self, function: str, lines: int) -> list[str]:
        path = self.path(function)
        if not path.exists() or lines <= 0:
            return []
        with path.open(errors="replace") as fh:
            return list(deque(fh, maxlen=lines))

    def follow(self, function: str) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=10_000)
        self._followers.setdefault(function, set()).add(queue)
        return queue

    async def watch(self, function: str, every: float = 0.25) -> AsyncIterator[str]:
        """New lines of the function's file as another process writes them (polled; a
        rotation starts over at the new file)."""
        path = self.path(function)
        try:
            stat = path.stat()
            inode, position = stat.st_ino, stat.st_size
        except FileNotFoundError:
            inode, position = None, 0
        pending = b""
        while True:
            try:
                stat = path.stat()
            except FileNotFoundError:
                await asyncio.sleep(every)
                continue
            if stat.st_ino != inode or stat.st_size < position:
                inode, position, pending = stat.st_ino, 0, b""
            if stat.st_size > position:
                with path.open("rb") as fh:
                    fh.seek(position)
                    data = fh.read(stat.st_size - position)
                position += len(data)
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace") + "\n"
            await asyncio.sleep(every)

    def unfollow(self, function: str, queue: asyncio.Queue[str]) -> None:
        self._followers.get(function, set()).discard(queue)

    def forget(self, function: str) -> None:
        fh = self._files.pop(function, None)
        if fh is not None:
            fh.close()
        for n in range(self.keep + 1):
            suffix = f".{n}" if n else ""
            Path(f"{self.path(function)}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def _file(self, function: str) -> TextIO:
        fh = self._files.get(function)
        if fh is None:
            fh = self._files[function] = self.path(function).open("a", encoding="utf-8")
        return fh

    def _rotate(self, function: str) -> None:
        self._files.pop(function).close()
        base = str(self.path(function))
        for n in range(self.keep - 1, 0, -1):
            if os.path.exists(f"{base}.{n}"):
                os.replace(f"{base}.{n}", f"{base}.{n + 1}")
        os.replace(base, f"{base}.1")


class LineReader(asyncio.Protocol):
    """Reads an instance's stdout/stderr pipe into the log book, a line at a time."""

    def __init__(self, book: LogBook, function: str, source: str) -> None:
        self.book = book
        self.function = function
        self.source = source
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        *lines, self.pending = (self.pending + data).split(b"\n")
        for line in lines:
            self.book.write(self.function, self.source, line.decode(errors="replace"))
        if len(self.pending) > 64 * 1024:
            self.book.write(self.function, self.source, self.pending.decode(errors="replace"))
            self.pending = b""

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pending:
            self.book.write(self.function, self.source, self.pending.decode(errors="replace"))
