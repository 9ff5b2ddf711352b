"""The supervisor: starts instances through zygotes, watches them, stops them in order.

Exits are seen two ways: the zygote (the parent) reports the exit code, and a pidfd
becomes readable when the process ends, which still works if the zygote itself died.
Stopping is fixed: SIGTERM (uvicorn drains and runs shutdown hooks), wait, SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hearth.builder.envs import BASE, Env
from hearth.sandbox.cgroups import Budget
from hearth.sandbox.disks import DiskError
from hearth.sandbox.plan import Host, Planner, layers
from hearth.sandbox.policy import Policy
from hearth.supervisor.instance import Instance, InstanceState, StartError
from hearth.supervisor.logs import LineReader, LogBook
from hearth.zygote.client import Zygote, ZygoteError

log = logging.getLogger("hearth.supervisor")

START_TIMEOUT = 120.0
EXIT_GRACE = 5.0  # after the status pipe closes without a report, wait this long for the exit
OUTPUT_TAIL = 20  # lines of an instance's output shown when it exits during startup
POLL_EVERY = 3  # seconds between two looks at one instance's memory, and at the cgroups


class Supervisor:
    """Instances of functions, forked from one zygote per serving version.

    The root zygote (Hearth's code only) spawns a version zygote per serving version; that
    zygote applies the function's sandbox once and forks the version's instances.
    """

    def __init__(
        self,
        run_dir: Path,
        logs: LogBook,
        planner: Planner | None = None,
        identity: Callable[[str], int] | None = None,
        on_exit: Callable[[Instance], None] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.logs = logs
        self.planner = planner or Planner(run_dir.parent, run_dir, layers("off", Host.probe()))
        self.identity = identity or (lambda function: 0)
        self.on_exit = on_exit or (lambda instance: None)
        self.root: Zygote | None = None
        self.zygotes: dict[str, Zygote] = {}  # by "function@version"
        self._wanted: dict[str, tuple[str, int, Env, Path, bool, Budget | None]] = {}
        self._early_exits: dict[tuple[str, int], int] = {}  # (zygote, pid) -> exit code
        self._hits: dict[str, dict[str, int]] = {}  # cgroup limit hits seen, by function
        self._round = 0  # which share of the instances `check` polls this time
        self.on_limit: Callable[[str, str], None] = lambda function, message: None
        self.instances: dict[int, Instance] = {}
        self._seq = itertools.count(1)
        self._zygote_locks: dict[str, asyncio.Lock] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._closing = False
        # The daemon keeps the only write end: when it dies, every instance sees EOF.
        self.lifeline_r, self.lifeline_w = os.pipe()
        os.set_inheritable(self.lifeline_r, False)

    def __repr__(self) -> str:
        return f"<Supervisor [{len(self.zygotes)} zygotes | {len(self.instances)} instances]>"

    async def _root(self) -> Zygote:
        lock = self._zygote_locks.setdefault("", asyncio.Lock())
        async with lock:
            if self.root is not None and self.root.alive:
                return self.root
            root = Zygote("root", self._zygote_exit)
            await root.start(sys.executable, [], self.lifeline_r)
            self.root = root
            log.info("root zygote started (pid %s)", root.pid)
            return root

    async def zygote(
        self,
        function: str,
        version: int,
        env: Env,
        code: Path,
        egress: bool = True,
        budget: Budget | None = None,
    ) -> Zygote:
        """The version's zygote, spawned (sandboxed) from the root zygote when missing."""
        key = f"{function}@{version}"
        lock = self._zygote_locks.setdefault(key, asyncio.Lock())
        async with lock:
            zygote = self.zygotes.get(key)
            if zygote is not None and zygote.alive:
                return zygote
            policy, exec_spec = self._plan(function, env, code, egress, budget)
            root = await self._root()
            zygote = await root.spawn(key, policy.to_dict(), exec_spec)
            self.zygotes[key] = zygote
            self._wanted[key] = (function, version, env, code, egress, budget)
            log.info("zygote for %s started (pid %s)", key, zygote.pid)
            task = asyncio.ensure_future(self._watch_zygote(key, zygote))
            self._watchers.add(task)
            task.add_done_callback(self._watchers.discard)
            return zygote

    def _plan(
        self, function: str, env: Env, code: Path, egress: bool, budget: Budget | None
    ) -> tuple[Policy, dict[str, Any] | None]:
        number = self.identity(function)
        if env.key == BASE:
            return self.planner.policy(function, number, code, None, egress, budget), None
        root = Path(env.python).parent.parent
        site = next((root / "lib").glob("python3*/site-packages"))
        exec_spec = {"python": env.python, "site": str(site), "preload": env.preload}
        return self.planner.policy(function, number, code, root, egress, budget), exec_spec

    def set_budget(self, function: str, budget: Budget) -> None:
        """What all of the function's processes may use together, changed while they run
        (its zygotes joined its cgroups; the limits apply at once)."""
        if self.planner.cgroups is not None:
            self.planner.cgroups.prepare(function, budget)

    def socket_dir(self, function: str) -> Path:
        return self.run_dir / function

    def all_zygotes(self) -> list[Zygote]:
        return [*([self.root] if self.root is not None else []), *self.zygotes.values()]

    async def _watch_zygote(self, key: str, zygote: Zygote) -> None:
        """A version's zygote that dies is spawned again (a cold start must not wait for
        it); its instances keep serving meanwhile (they watch the lifeline, not it)."""
        await zygote.wait()
        if self._closing or self.zygotes.get(key) is not zygote:
            return
        log.warning("zygote for %s exited; starting it again", key)
        for delay in (0.0, 0.2, 1.0):  # the root zygote may have died with it
            await asyncio.sleep(delay)
            if self._closing or key not in self._wanted:
                return
            try:
                await self.zygote(*self._wanted[key])
                return
            except (ZygoteError, OSError, StopIteration) as exc:
                error = exc
        self.zygotes.pop(key, None)
        log.error("zygote for %s: %s (tried again at the next instance start)", key, error)

    async def start(
        self,
        function: str,
        version: int,
        env: Env,
        code_dir: Path,
        entrypoint: str | None,
        user_env: dict[str, str],
        concurrency: int,
        drain: float,
        memory_limit: int = 0,
        egress: bool = True,
        budget: Budget | None = None,
        liveness: float = 10.0,
    ) -> Instance:
        """Fork an instance and wait until it is ready; raise StartError with its report."""
        seq = next(self._seq)
        instance = Instance(
            id=f"{function}@{version}#{seq}",
            function=function,
            version=version,
            env=env.key,
            socket=str(self.socket_dir(function) / f"i{seq}.sock"),
            concurrency=concurrency,
            memory_limit=memory_limit,
            liveness=liveness,
            # A quarter of the liveness deadline (at most 2.5 s): still four beats before
            # one is missed.
            heartbeat=min(2.5, liveness / 4),
        )
        spec: dict[str, Any] = {
            "heartbeat": instance.heartbeat,
            "code_dir": str(code_dir),
            "entrypoint": entrypoint,
            "socket": instance.socket,
            "concurrency": concurrency,
            "drain": drain,
            "env": {
                **user_env,
                "HEARTH_FUNCTION": function,
                "HEARTH_VERSION": str(version),
                "HEARTH_INSTANCE": instance.id,
            },
        }
        loop = asyncio.get_running_loop()
        log_r, log_w = os.pipe()
        status_r, status_w = os.pipe()
        try:
            zygote = await self.zygote(function, version, env, code_dir, egress, budget)
            instance.pid = await zygote.fork(spec, [log_w, status_w])
            if parent_of(instance.pid) not in (zygote.pid, None):
                zygote.kill()  # it named a process that is not its child: never trust it again
                raise ZygoteError(f"zygote {zygote.key} reported pid {instance.pid}, not its child")
        except (ZygoteError, DiskError, OSError, TimeoutError) as exc:
            for fd in (log_r, status_r):
                os.close(fd)
            raise StartError(f"could not fork an instance: {exc}") from exc
        finally:
            os.close(log_w)
            os.close(status_w)
        self.instances[instance.pid] = instance
        early = self._early_exits.pop((zygote.key, instance.pid), None)
        if early is not None:  # it exited before the fork's answer was taken up
            self._exited(instance, early)
        else:
            self._watch(instance)
        output = OutputReader(self.logs, function, instance.id)
        await loop.connect_read_pipe(lambda: output, os.fdopen(log_r, "rb", 0))
        instance.status = status_r
        first = first_line(status_r)
        try:
            report = await self._first_report(instance, first)
        except BaseException:
            close_status(instance)
            raise
        if "ready" in report:
            # From now on the pipe carries heartbeats, read in batches by `check`: the
            # event loop is not woken for each of a thousand instances' beats.
            output.ready()
            instance.state = InstanceState.READY
            instance.last_beat = time.monotonic()
            instance.rss = resident_bytes(instance.pid)
            return instance
        close_status(instance)
        await self.kill(instance)
        error = str(report.get("error") or "the instance exited during startup")
        if report.get("exited"):
            error += await self._output_tail(output)
        raise StartError(error)

    async def _first_report(
        self, instance: Instance, first: asyncio.Future[bytes]
    ) -> dict[str, Any]:
        waiting: set[asyncio.Future[Any]] = {first, instance.exited}
        done, _ = await asyncio.wait(
            waiting, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if first in done and first.result():
            try:
                report: dict[str, Any] = json.loads(first.result())
                return report
            except ValueError:
                return {"error": "the instance sent a malformed status line"}
        if first.done() and not instance.exited.done():
            # The status pipe closed without a report: the process is exiting, and its exit
            # code arrives a moment later (from the zygote, or the pidfd).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(instance.exited), EXIT_GRACE)
        if instance.exited.done():
            how = describe_exit(instance.exited.result())
            return {"error": f"the instance exited during startup ({how})", "exited": True}
        if first.done():
            return {"error": "the instance closed its status pipe during startup without a report"}
        return {"error": f"setup did not finish within {START_TIMEOUT:g}s"}

    async def _output_tail(self, output: OutputReader) -> str:
        """The last lines the instance printed, as a suffix for its error message."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(output.closed), 1.0)
        lines = output.last_lines()
        if not lines:
            return ""
        return "\nits last output:\n" + "\n".join(lines)

    def stop_zygote(self, function: str, version: int) -> bool:
        """Stop the zygote of a version that no longer serves; True if one ran."""
        self._wanted.pop(f"{function}@{version}", None)
        zygote = self.zygotes.pop(f"{function}@{version}", None)
        if zygote is None:
            return False
        zygote.kill()  # its watcher sees it is no longer ours
        return True

    def _watch(self, instance: Instance) -> None:
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(instance.pid)
        except ProcessLookupError:
            self._exited(instance, None)
            return

        def readable() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            # Its zygote (the parent) reports the exit code; wait for that while the zygote
            # lives (a busy machine may take a while), not when it is gone.
            zygote = self.zygotes.get(f"{instance.function}@{instance.version}")
            wait = 2.0 if zygote is not None and zygote.alive else 0.0
            loop.call_later(wait, self._exited, instance, None)

        loop.add_reader(pidfd, readable)

    def _zygote_exit(self, zygote: Zygote, pid: int, code: int) -> None:
        """An exit reported by a zygote: believed only for that zygote's own instances (a
        version zygote runs a function's packages and may lie)."""
        instance = self.instances.get(pid)
        if instance is None:
            # The exit can be read before the fork's answer is taken up: keep it (a few).
            self._early_exits[(zygote.key, pid)] = code
            while len(self._early_exits) > 64:
                del self._early_exits[next(iter(self._early_exits))]
        elif f"{instance.function}@{instance.version}" == zygote.key:
            self._exited(instance, code)

    def _exited(self, instance: Instance, code: int | None) -> None:
        if instance.exited.done():
            return
        self.instances.pop(instance.pid, None)
        close_status(instance)
        instance.exit_code = code
        instance.exited.set_result(code)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(instance.socket)
        if instance.state not in (InstanceState.DRAINING, InstanceState.STOPPED):
            instance.state = InstanceState.CRASHED
        self.on_exit(instance)

    def check(self) -> None:
        """Kill ready instances that stopped beating or grew past their memory limit.

        Called once a second. An instance's status pipe is read (never waited on) once a
        heartbeat period has passed since its last beat was seen: one read per instance
        every few seconds, instead of a wakeup of the event loop per beat. Resident
        memory (a read of /proc per instance) and the cgroups' limit counters are looked
        at every POLL_EVERY seconds, a share of the instances each time: the cgroup's own
        memory limit is the hard stop, this poll names the instance."""
        now = time.monotonic()
        self._round = (self._round + 1) % POLL_EVERY
        for instance in list(self.instances.values()):
            if instance.state != InstanceState.READY or not instance.alive:
                continue
            silent = now - instance.last_beat
            if silent >= instance.heartbeat and beat(instance.status):
                instance.last_beat, silent = now, 0.0
            if silent > instance.liveness:
                self._kill_for(instance, f"no heartbeat for {silent:.1f}s (event loop blocked?)")
                continue
            if instance.pid % POLL_EVERY != self._round:
                continue
            rss = instance.rss = resident_bytes(instance.pid)
            if instance.memory_limit and rss > instance.memory_limit:
                self._kill_for(
                    instance,
                    f"over its memory limit ({rss / 2**20:.0f} MB > "
                    f"{instance.memory_limit / 2**20:.0f} MB)",
                )
        if self._round == 0:
            self._check_limits()

    def _check_limits(self) -> None:
        """Report limits hit since the last look: memory or tasks refused, a full disk."""
        functions = {key.partition("@")[0] for key in self._wanted}
        disks = self.planner.disks
        if disks is not None:
            while disks.notes:
                self.on_limit(*disks.notes.pop(0))
            for function in functions:
                if disks.newly_full(function):
                    self.on_limit(function, "the function's disk is full (limits.disk)")
        cgroups = self.planner.cgroups
        if cgroups is None:
            return
        for function in functions:
            hits = cgroups.hits(function)
            seen = self._hits.setdefault(function, {})
            for kind, count in hits.items():
                if count > seen.get(kind, 0):
                    what = "memory" if kind == "memory" else "process and thread"
                    self.on_limit(
                        function,
                        f"the function hit its {what} limit ({count - seen.get(kind, 0)} "
                        f"times since the last check)",
                    )
                seen[kind] = count

    def _kill_for(self, instance: Instance, reason: str) -> None:
        log.warning("killing %s: %s", instance.id, reason)
        instance.kill_reason = reason
        self._signal(instance, signal.SIGKILL)

    async def stop(self, instance: Instance, grace: float) -> None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL."""
        if instance.state != InstanceState.CRASHED:
            instance.state = InstanceState.STOPPED
        if not instance.alive:
            return
        self._signal(instance, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(instance.exited), grace)
        except TimeoutError:
            log.warning("instance %s did not stop within %.1fs; killing it", instance.id, grace)
            await self.kill(instance)

    async def kill(self, instance: Instance) -> None:
        if instance.state != InstanceState.CRASHED:
            instance.state = InstanceState.STOPPED
        if instance.alive:
            self._signal(instance, signal.SIGKILL)
            await asyncio.shield(instance.exited)

    def _signal(self, instance: Instance, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(instance.pid, sig)

    async def close(self) -> None:
        """Stop the zygotes (instances are stopped by their owners before this)."""
        self._closing = True
        zygotes = [*self.zygotes.values(), *([self.root] if self.root else [])]
        for zygote in zygotes:
            zygote.kill()
        for zygote in zygotes:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(zygote.wait(), 5)
        if self.planner.cgroups is not None:  # empty now: every process of theirs is gone
            self.planner.cgroups.close()
        self.zygotes.clear()
        self.root = None
        os.close(self.lifeline_w)
        os.close(self.lifeline_r)


def describe_exit(code: int | None) -> str:
    """An exit code as the zygote reports it (negative: killed by that signal)."""
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"killed by signal {name}"
    return f"exit code {code}"


class OutputReader(LineReader):
    """An instance's output into the log book; until it is ready, also its last lines."""

    def __init__(self, book: LogBook, function: str, source: str) -> None:
        super().__init__(book, function, source)
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.startup: deque[bytes] | None = deque(maxlen=OUTPUT_TAIL)

    def data_received(self, data: bytes) -> None:
        if self.startup is not None and b"\n" in data:
            *lines, _ = (self.pending + data).split(b"\n")
            self.startup.extend(line[:1000] for line in lines)
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.startup is not None and self.pending:
            self.startup.append(self.pending[:1000])
        super().connection_lost(exc)
        if not self.closed.done():
            self.closed.set_result(None)

    def ready(self) -> None:
        self.startup = None  # past startup, lines go to the log book only

    def last_lines(self) -> list[str]:
        return [line.decode(errors="replace") for line in self.startup or ()]


def first_line(fd: int) -> asyncio.Future[bytes]:
    """The first line of an instance's status pipe (b"" if it closes first): its report.
    The loop watches the pipe only until then."""
    loop = asyncio.get_running_loop()
    first: asyncio.Future[bytes] = loop.create_future()
    os.set_blocking(fd, False)
    pending = bytearray()

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        pending.extend(data)
        if data and b"\n" not in data and len(pending) < 65536:
            return
        loop.remove_reader(fd)
        if not first.done():
            first.set_result(bytes(pending).partition(b"\n")[0])

    loop.add_reader(fd, readable)
    return first


def beat(fd: int) -> bool:
    """Whether an instance wrote heartbeats since the last look (drains the pipe)."""
    if fd < 0:
        return False
    try:
        return bool(os.read(fd, 4096))
    except OSError:  # nothing written (BlockingIOError), or the pipe is gone
        return False


def close_status(instance: Instance) -> None:
    if instance.status >= 0:
        with contextlib.suppress(OSError):
            asyncio.get_running_loop().remove_reader(instance.status)
        os.close(instance.status)
        instance.status = -1


def parent_of(pid: int) -> int | None:
    """The parent pid of a process; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the command name may hold spaces


def resident_bytes(pid: int) -> int:
    """Resident set size of a process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
