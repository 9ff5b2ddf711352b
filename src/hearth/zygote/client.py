"""The daemon's handle on a zygote process: the root zygote, or a version zygote."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

READY_TIMEOUT = 120.0  # an environment's preload may import a lot
# Requests sent to a zygote and not yet answered. The socket's send buffer holds a few
# hundred kB (a spec and two descriptors each); past that a send fails with EAGAIN. The
# rest wait here, in order, so a burst of any size is served at the rate the zygote forks.
IN_FLIGHT = 8


class ZygoteError(RuntimeError):
    """The zygote could not start or died before answering."""


class Zygote:
    """A zygote process: `fork()` returns a new instance's pid, `spawn()` a new zygote."""

    def __init__(self, key: str, on_exit: Callable[[Zygote, int, int], None]) -> None:
        self.key = key
        self.on_exit = on_exit
        self.pid: int | None = None
        self.process: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._slots = asyncio.Semaphore(IN_FLIGHT)
        self._ready: asyncio.Future[int] | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        return f"<Zygote {self.key} pid={self.pid} pending={len(self._pending)}>"

    @property
    def alive(self) -> bool:
        return self._sock is not None

    async def start(self, python: str, preload: list[str], lifeline: int) -> None:
        """Start the root zygote: a new interpreter that runs only Hearth's code."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = await asyncio.create_subprocess_exec(
                python,
                "-m",
                "hearth.zygote",
                str(theirs.fileno()),
                str(lifeline),
                json.dumps(preload),
                pass_fds=(theirs.fileno(), lifeline),
                start_new_session=True,  # terminal signals go to the daemon alone
                stdin=asyncio.subprocess.DEVNULL,
                # glibc makes an arena per thread (WSGI and sync handlers run in threads);
                # two keep a thread pool's memory near that of one thread.
                env={**os.environ, "MALLOC_ARENA_MAX": "2"},
            )
        finally:
            theirs.close()
        await self._attach(ours)

    async def spawn(
        self, key: str, policy: dict[str, Any], exec_spec: dict[str, Any] | None
    ) -> Zygote:
        """Fork a version zygote that applies `policy` (and execs `exec_spec`, if given)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        child = Zygote(key, self.on_exit)
        try:
            message = {"op": "spawn", "policy": policy, "exec": exec_spec}
            child.pid = await self._request(message, [theirs.fileno()])
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        await child._attach(ours)
        return child

    async def fork(self, spec: dict[str, Any], fds: list[int]) -> int:
        return await self._request({"op": "fork", "spec": spec}, fds)

    def kill(self) -> None:
        self._close(ZygoteError("zygote stopped"))
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
        elif self.process is None and self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    async def wait(self) -> None:
        """Until the zygote is gone (its socket closed)."""
        await asyncio.shield(self._closed)
        if self.process is not None:
            await self.process.wait()

    async def _attach(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self._sock = sock
        self._ready = loop.create_future()
        loop.add_reader(sock.fileno(), self._on_readable)
        try:
            pid = await asyncio.wait_for(self._ready, READY_TIMEOUT)
        except (TimeoutError, ZygoteError) as exc:
            self.kill()
            raise ZygoteError(f"zygote {self.key} did not start: {exc}") from exc
        self.pid = self.pid or pid

    async def _request(self, message: dict[str, Any], fds: list[int]) -> int:
        if self._sock is None:
            raise ZygoteError(f"zygote {self.key} is not running")
        async with self._slots:
            if self._sock is None:
                raise ZygoteError(f"zygote {self.key} is not running")
            request_id = next(self._ids)
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._pending[request_id] = future
            data = json.dumps({**message, "id": request_id}).encode()
            try:
                await self._send(data, fds)
            except BaseException:
                self._pending.pop(request_id, None)
                raise
            return await asyncio.wait_for(future, 30)

    async def _send(self, data: bytes, fds: list[int]) -> None:
        """Send one request, waiting while the zygote's queue is full."""
        loop = asyncio.get_running_loop()
        while True:
            sock = self._sock
            if sock is None:
                raise ZygoteError(f"zygote {self.key} is not running")
            try:
                socket.send_fds(sock, [data], fds)
                return
            except BlockingIOError:
                writable: asyncio.Future[None] = loop.create_future()
                loop.add_writer(sock.fileno(), _settle, writable)
                try:
                    await asyncio.wait_for(writable, 30)
                finally:
                    if self._sock is sock:
                        loop.remove_writer(sock.fileno())

    def _on_readable(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(ZygoteError(f"zygote {self.key} exited"))
            return
        try:
            message = json.loads(data)
            op = message["op"]
        except (ValueError, KeyError, TypeError):
            self._close(ZygoteError(f"zygote {self.key} sent a malformed message"))
            self.kill()
            return
        if op in ("forked", "spawned"):
            future = self._pending.pop(message.get("id"), None)
            if future is not None and not future.done():
                future.set_result(int(message["pid"]))
        elif op == "exit":
            self.on_exit(self, int(message["pid"]), int(message["code"]))
        elif op == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(int(message["pid"]))

    def _close(self, error: Exception) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            asyncio.get_running_loop().remove_writer(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for future in [*self._pending.values(), self._ready]:
            if future is not None and not future.done():
                future.set_exception(error)
        self._pending.clear()
        if not self._closed.done():
            self._closed.set_result(None)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
