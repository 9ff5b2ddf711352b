"""The daemon's handle on one zygote process."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
from collections.abc import Callable
from typing import Any


class ZygoteError(RuntimeError):
    """The zygote could not start or died before answering."""


class Zygote:
    """One zygote per environment; `fork()` returns the new instance's pid."""

    def __init__(
        self,
        key: str,
        python: str,
        preload: list[str],
        lifeline: int,
        on_exit: Callable[[int, int], None],
    ) -> None:
        self.key = key
        self.python = python
        self.preload = preload
        self.lifeline = lifeline
        self.on_exit = on_exit
        self.pid: int | None = None
        self.process: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._ready: asyncio.Future[int] | None = None

    def __repr__(self) -> str:
        return f"<Zygote {self.key} pid={self.pid} pending={len(self._pending)}>"

    @property
    def alive(self) -> bool:
        return self._sock is not None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                "hearth.zygote",
                str(theirs.fileno()),
                str(self.lifeline),
                json.dumps(self.preload),
                pass_fds=(theirs.fileno(), self.lifeline),
                start_new_session=True,  # terminal signals go to the daemon alone
                stdin=asyncio.subprocess.DEVNULL,
                # glibc makes an arena per thread (WSGI and sync handlers run in threads);
                # two keep a thread pool's memory near that of one thread.
                env={**os.environ, "MALLOC_ARENA_MAX": "2"},
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_readable)
        try:
            self.pid = await asyncio.wait_for(self._ready, 120)
        except (TimeoutError, ZygoteError) as exc:
            self.kill()
            raise ZygoteError(f"zygote for environment {self.key} did not start: {exc}") from exc

    async def fork(self, spec: dict[str, Any], fds: list[int]) -> int:
        if self._sock is None:
            raise ZygoteError(f"zygote for environment {self.key} is not running")
        request_id = next(self._ids)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        message = json.dumps({"op": "fork", "id": request_id, "spec": spec}).encode()
        # A small datagram on a local socket: the send completes without blocking.
        socket.send_fds(self._sock, [message], fds)
        return await asyncio.wait_for(future, 30)

    def kill(self) -> None:
        self._close(ZygoteError("zygote stopped"))
        if self.process is not None and self.process.returncode is None:
            self.process.kill()

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    def _on_readable(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(ZygoteError(f"zygote for environment {self.key} exited"))
            return
        message = json.loads(data)
        op = message["op"]
        if op == "forked":
            future = self._pending.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(message["pid"])
        elif op == "exit":
            self.on_exit(message["pid"], message["code"])
        elif op == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(message["pid"])

    def _close(self, error: Exception) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for future in [*self._pending.values(), self._ready]:
            if future is not None and not future.done():
                future.set_exception(error)
        self._pending.clear()
