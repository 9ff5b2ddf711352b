"""One function's key-value store: a `redis-server` of its own, on a Unix socket.

A server per function rather than one shared server: Redis has no per-user keyspace, so
a shared server could keep tenants apart only by prefixing their keys, and unmodified
`redis-py` code would no longer work. Its own process also gives each function its own
memory cap, persistence files and uid (the server runs in the function's sandbox).

The function connects as Redis's `default` user, which may run every command but the
administrative ones (`CONFIG`, `SHUTDOWN`, `SAVE`, `ACL`, `MODULE`, `DEBUG`...): it cannot
lift its memory cap or load code into the server. The daemon has a user of its own, with
a password made for each start, for what it does itself (snapshots for backups, a new
memory cap).

Persistence is an append-only file, fsynced every second, in the function's `kv` folder
(beside its data folder; not visible to the function's own processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import redis
import redis.asyncio

from hearth.sandbox.policy import Policy

ADMIN = "hearth"
CONFIG = "redis.conf"
SNAPSHOT = "snapshot.rdb"
AOF_DIR = "appendonlydir"
BASE = "appendonly.aof.1.base.rdb"
MANIFEST = "appendonly.aof.manifest"
# A snapshot, as the append-only directory a server starts from (written at restore).
MANIFEST_OF_BASE = f"file {BASE} seq 1 type b\n"
EVICTION = "noeviction"


class KvError(RuntimeError):
    """A KV server could not start or answer; the message says why."""


@dataclass(frozen=True)
class Settings:
    binary: str  # the redis-server program
    socket: Path
    folder: Path  # where its configuration and append-only files live
    memory: int  # maxmemory, in bytes


def config_text(settings: Settings, password: str) -> str:
    """The server's configuration file (pure)."""
    return "\n".join(
        [
            "port 0",  # no TCP at all: the Unix socket only
            f"unixsocket {settings.socket}",
            "unixsocketperm 700",  # the function's uid (and root) may connect
            f"dir {settings.folder}",
            "daemonize no",
            'logfile ""',
            "appendonly yes",
            "appendfsync everysec",
            'save ""',  # no periodic snapshot: the append-only file is the persistence
            f"dbfilename {SNAPSHOT}",  # what a backup asks for (BGSAVE)
            f"maxmemory {settings.memory}",
            f"maxmemory-policy {EVICTION}",
            "databases 16",
            "user default on nopass ~* &* +@all -@admin",
            f"user {ADMIN} on >{password} ~* &* +@all",
            "",
        ]
    )


class Server:
    """One function's redis-server: started under its policy, stopped with SIGTERM (the
    server writes its append-only file out and exits), SIGKILL if it does not."""

    def __init__(
        self, function: str, settings: Settings, policy: Policy, log: deque[str] | None = None
    ) -> None:
        self.function = function
        self.settings = settings
        self.policy = policy
        self.password = secrets.token_hex(24)
        self.process: asyncio.subprocess.Process | None = None
        self.output: deque[str] = log if log is not None else deque(maxlen=200)
        self._reader: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Server {self.function} pid={self.pid} memory={self.settings.memory}>"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, on_line: object = None, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers on its socket; KvError otherwise."""
        folder, uid = self.settings.folder, self.policy.uid
        conf = folder / CONFIG
        conf.unlink(missing_ok=True)
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(config_text(self.settings, self.password))
        if uid is not None:
            os.chown(conf, uid, uid)
        self.settings.socket.unlink(missing_ok=True)
        runner = [sys.executable, "-m", "hearth.sandbox.run", json.dumps(self.policy.to_dict())]
        self.process = await asyncio.create_subprocess_exec(
            *runner,
            self.settings.binary,
            str(conf),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches the daemon only
        )
        self._reader = asyncio.ensure_future(self._read(on_line))
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                await asyncio.wait([self._reader], timeout=1.0)
                tail = "\n".join(list(self.output)[-15:])
                raise KvError(f"the KV server of {self.function} exited at start:\n{tail}")
            if self.settings.socket.exists():
                with contextlib.suppress(redis.RedisError, OSError):
                    async with self._admin() as client:
                        await client.ping()
                    return
            if time.monotonic() > deadline:
                await self.stop(grace=1.0)
                raise KvError(f"the KV server of {self.function} did not answer in {timeout}s")
            await asyncio.sleep(0.02)

    async def _read(self, on_line: object) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self.output.append(line)
            if callable(on_line):
                on_line(line)

    def _admin(self) -> redis.asyncio.Redis:
        """A connection as the daemon's own user."""
        return redis.asyncio.Redis(
            unix_socket_path=str(self.settings.socket),
            username=ADMIN,
            password=self.password,
            socket_timeout=5.0,
        )

    async def set_memory(self, memory: int) -> None:
        """A new memory cap, at once (and in the configuration, for the next start)."""
        async with self._admin() as client:
            await client.config_set("maxmemory", memory)
        self.settings = Settings(
            self.settings.binary, self.settings.socket, self.settings.folder, memory
        )

    async def wait(self) -> int:
        assert self.process is not None
        code = await self.process.wait()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=1.0)
        return code

    async def stop(self, grace: float = 10.0) -> None:
        if not self.alive:
            return
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()

    def snapshot(self, timeout: float = 300.0) -> Path:
        """A consistent snapshot of the whole store, taken by the server in a child of its
        own while it serves (BGSAVE); the snapshot's path. Blocking: call from a thread."""
        client = redis.Redis(
            unix_socket_path=str(self.settings.socket),
            username=ADMIN,
            password=self.password,
            socket_timeout=30.0,
        )
        try:
            saves = int(client.info("persistence")["rdb_saves"])
            try:  # SCHEDULE: if an append-only rewrite runs, save right after it
                client.bgsave(schedule=True)
            except redis.ResponseError as exc:
                if "in progress" not in str(exc):  # another backup's: it will do
                    raise
            deadline = time.monotonic() + timeout
            while True:
                info = client.info("persistence")
                if int(info["rdb_saves"]) > saves and not info["rdb_bgsave_in_progress"]:
                    if info["rdb_last_bgsave_status"] != "ok":
                        raise KvError(f"the KV server of {self.function} could not save")
                    break
                if time.monotonic() > deadline:
                    raise KvError(f"the KV snapshot of {self.function} took over {timeout}s")
                time.sleep(0.02)
        except (redis.RedisError, OSError) as exc:
            raise KvError(f"the KV server of {self.function} did not answer: {exc}") from exc
        finally:
            client.close()
        return self.settings.folder / SNAPSHOT
