"""The access log, as the daemon sees it: finished requests go, once a second, to the
writer process (`hearth.metrics.writer`), a `marshal` call and a pipe write per few
thousand; the files are read back from here (`book`) for `hearth logs --access`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import sys
from pathlib import Path
from typing import Any

from hearth.supervisor import LogBook

log = logging.getLogger("hearth.metrics")
CHUNK = 4000  # records sent at once: ~1 ms of marshal on the event loop


class AccessLog:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.book = LogBook(folder)  # reading only: the writer process writes
        self.process: asyncio.subprocess.Process | None = None
        self.enabled = True  # off: records (kept for spans) are not written

    async def write(self, records: list[tuple[Any, ...]]) -> None:
        """Hand the records to the writer; waits (the monitor, never the gateway) while
        the writer is behind."""
        if not self.enabled:
            return
        process = await self._writer()
        assert process.stdin is not None
        for start in range(0, len(records), CHUNK):  # the event loop gets a turn between
            self._send(process, records[start : start + CHUNK])
            with contextlib.suppress(ConnectionError):
                await process.stdin.drain()
            await asyncio.sleep(0)

    def forget(self, function: str) -> None:
        """A removed function's access log goes too (after what is queued for it)."""
        if self.process is not None and self.process.returncode is None:
            self._send(self.process, ("forget", function))
        else:
            self.book.forget(function)

    async def close(self) -> None:
        process, self.process = self.process, None
        if process is None or process.stdin is None:
            return
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _writer(self) -> asyncio.subprocess.Process:
        process = self.process
        if process is None or process.returncode is not None:
            if process is not None:
                log.warning(
                    "the access log writer exited (%s); starting it again", process.returncode
                )
            process = self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hearth.metrics.writer",
                str(self.folder),
                stdin=asyncio.subprocess.PIPE,
                start_new_session=True,  # a terminal's Ctrl-C is the daemon's to handle
            )
        return process

    @staticmethod
    def _send(process: asyncio.subprocess.Process, message: Any) -> None:
        payload = marshal.dumps(message)
        assert process.stdin is not None
        with contextlib.suppress(ConnectionError):
            process.stdin.write(len(payload).to_bytes(4, "little") + payload)
