"""The scheduler: fires each serving schedule's runs and records them.

One loop, in the manner of a reconciler: each pass reads what serves (the schedules of
each function's release with the largest share of traffic), asks `timing.due` what each
schedule should do, and acts: record the tick, then start a run (a request through the
gateway, `call.py`) or, when the schedule's previous run is still going, skip the tick
with an event. It passes every quarter of a second, or sooner when a tick is nearer, so a
deploy that adds, changes or removes schedules is followed within that time.

A tick is recorded in the store before its run starts, so it runs at most once, across
restarts too; a schedule whose stored tick is older than its latest tick missed ticks
while the daemon was down, and runs once for all of them. A schedule's runs never
overlap: at most one run per schedule is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hearth.control.model import Function
from hearth.scheduler.call import Answer
from hearth.scheduler.timing import MAX_COUNTED, due
from hearth.spec import FunctionSpec, Schedule
from hearth.store import Store

log = logging.getLogger("hearth")
TICK = 0.25  # seconds between passes at most
STOPPED = "the daemon stopped during the run"
# (function, schedule, timeout) -> how the run ended; GatewayCaller in the daemon.
Send = Callable[[str, Schedule, float], Awaitable[Answer]]


@dataclass(eq=False)
class Slot:
    """One serving schedule as the scheduler follows it."""

    function: str
    schedule: Schedule
    last: float | None  # the last tick recorded (None: never seen before)
    next: float  # when to look again
    loaded: bool = True  # made from what was stored, not yet looked at since


@dataclass(eq=False)
class Run:
    started: float  # wall clock
    task: asyncio.Task[None]


class Scheduler:
    def __init__(
        self,
        store: Store,
        functions: Mapping[str, Function],
        send: Send,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.functions = functions  # the reconciler's records: read, never changed
        self.send = send
        self.clock = clock  # wall clock: cron ticks are times of day
        self._slots: dict[tuple[str, str], Slot] = {}
        self._running: dict[tuple[str, str], Run] = {}
        self._keys: dict[str, frozenset[str]] = {}  # each function's schedules, last pass
        self._loop: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Scheduler [{len(self._slots)} schedules | {len(self._running)} running]>"

    # the loop

    def start(self) -> None:
        self._loop = asyncio.ensure_future(self.run())

    async def run(self) -> None:
        while True:
            try:
                wake = self.step(self.clock())
            except Exception:  # a bad pass must not end the schedules; the next one retries
                log.exception("scheduler pass failed")
                wake = self.clock() + TICK
            await asyncio.sleep(min(TICK, max(0.0, wake - self.clock())))

    async def stop(self) -> None:
        """No run starts from now on; runs in flight go on (the drain lets them finish)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None

    async def close(self, grace: float = 1.0) -> None:
        """After the drain: runs still going get `grace`, then are cut (and recorded)."""
        await self.stop()
        tasks = [run.task for run in self._running.values()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    # one pass

    def step(self, now: float) -> float:
        """Look at every serving schedule once: record, fire or skip what is due. Returns
        the time of the next tick of any schedule (now + TICK if there is none)."""
        specs = serving(self.functions)
        self._follow(specs, now)
        wake = now + TICK
        for slot in self._slots.values():
            if now >= slot.next:
                self._look(slot, specs[slot.function], now)
            wake = min(wake, slot.next)
        return wake

    def _follow(self, specs: dict[str, FunctionSpec], now: float) -> None:
        """Slots for the schedules that serve now; none for those that left."""
        wanted = {(name, s.key): s for name, spec in specs.items() for s in spec.schedules}
        for gone in self._slots.keys() - wanted.keys():
            del self._slots[gone]
        for name, spec in specs.items():
            keys = frozenset(s.key for s in spec.schedules)
            if self._keys.get(name) != keys:
                # Taken out of hearth.toml: forgotten, so put back it starts from then.
                self.store.keep_schedules(name, set(keys))
                self._keys[name] = keys
        for name in self._keys.keys() - specs.keys():
            del self._keys[name]  # removed: `hearth rm` forgot its rows
        new = [pair for pair in wanted if pair not in self._slots]
        stored = {name: self.store.schedule_rows(name) for name in {name for name, _ in new}}
        for name, key in new:
            row = stored[name].get(key)
            last = row.last_due if row is not None else None
            self._slots[(name, key)] = Slot(name, wanted[(name, key)], last, now)

    def _look(self, slot: Slot, spec: FunctionSpec, now: float) -> None:
        schedule, name = slot.schedule, slot.function
        step = due(schedule, slot.last, now)
        loaded, slot.loaded = slot.loaded, False
        if not step.fire:
            if step.tick != slot.last:  # first seen (or the clock went back): from now
                self.store.schedule_tick(name, schedule.key, step.tick, None)
            slot.last, slot.next = step.tick, step.next
            return
        slot.last, slot.next = step.tick, step.next
        key = (name, schedule.key)
        running = self._running.get(key)
        if running is not None:
            self.store.schedule_tick(name, schedule.key, step.tick, None)
            self._event(name, "schedule-skipped", skipped(schedule, now - running.started))
            return
        note = missed_note(step.ticks, loaded)
        self.store.schedule_tick(name, schedule.key, step.tick, now)  # before it runs
        task = asyncio.ensure_future(self._run(name, schedule, spec.limits.timeout, note))
        self._running[key] = Run(now, task)

    async def _run(self, name: str, schedule: Schedule, timeout: float, note: str) -> None:
        began = time.monotonic()
        try:
            answer = await self.send(name, schedule, timeout)
        except asyncio.CancelledError:
            self._done(name, schedule, Answer(None, time.monotonic() - began, STOPPED), note)
            raise
        except Exception as exc:  # a bug in sending: recorded as the run's failure
            log.exception("schedule %r of %s", schedule.when, name)
            answer = Answer(None, time.monotonic() - began, f"{type(exc).__name__}: {exc}")
        self._done(name, schedule, answer, note)

    def _done(self, name: str, schedule: Schedule, answer: Answer, note: str) -> None:
        self._running.pop((name, schedule.key), None)
        seconds = round(answer.seconds, 3)
        self.store.schedule_done(name, schedule.key, answer.status, seconds, answer.error)
        kind = "schedule" if answer.ok else "schedule-failed"
        self._event(name, kind, ran(schedule, answer, note))

    def _event(self, name: str, kind: str, message: str) -> None:
        if self.store.exists(name):  # not for a function removed meanwhile
            self.store.event(name, kind, message)

    # what the API shows

    def describe(self, shown: Callable[[str], bool] = lambda name: True) -> list[dict[str, Any]]:
        """Every serving schedule of the functions `shown`: timing, next tick (Unix time),
        last run and whether one is running."""
        now = self.clock()
        answer = []
        for name, spec in sorted(serving(self.functions).items()):
            if not spec.schedules or not shown(name):
                continue
            stored = self.store.schedule_rows(name)
            for schedule in spec.schedules:
                row = stored.get(schedule.key)
                slot = self._slots.get((name, schedule.key))
                last = slot.last if slot is not None else row.last_due if row else None
                following = due(schedule, last, now).next
                next_run = slot.next if slot is not None and slot.next > now else following
                run = self._running.get((name, schedule.key))
                answer.append(
                    {
                        "function": name,
                        "schedule": schedule.when,
                        "cron": schedule.cron,
                        "every": schedule.every,
                        "method": schedule.method,
                        "path": schedule.path,
                        "next_run": next_run,
                        "last_run": row.last_run if row else None,
                        "last_status": row.last_status if row else None,
                        "last_seconds": row.last_seconds if row else None,
                        "last_error": row.last_error if row else None,
                        "running": run is not None,
                    }
                )
        return answer


def serving(functions: Mapping[str, Function]) -> dict[str, FunctionSpec]:
    """The spec whose schedules run, for each function: its release with the largest
    share of traffic, the newer on a tie (the one the store calls active)."""
    specs = {}
    for name, function in functions.items():
        if function.releases:
            _, release = max(function.releases.items(), key=lambda i: (i[1].pool.weight, i[0]))
            specs[name] = release.spec
    return specs


def missed_note(ticks: int, loaded: bool) -> str:
    """What a run stands for beyond its own tick: ticks that came while the daemon was
    down (the first look at a stored schedule), or while it was too busy to look."""
    count = f"{ticks}+" if ticks >= MAX_COUNTED else str(ticks)
    if loaded:
        return f"missed {count} tick{'s' if ticks > 1 else ''} while down: ran once"
    if ticks > 1:
        return f"{count} ticks came at once (the daemon was late): ran once"
    return ""


def ran(schedule: Schedule, answer: Answer, note: str = "") -> str:
    """`POST /tasks/cleanup -> 200 in 0.12s (every 1m)`, or how it failed."""
    request = f"{schedule.method} {schedule.path}"
    if answer.status is not None:
        outcome = f"{request} -> {answer.status} in {answer.seconds:.2f}s"
    else:
        outcome = f"{request} failed after {answer.seconds:.2f}s: {answer.error}"
    detail = "; ".join(part for part in (schedule.when, note) if part)
    return f"{outcome} ({detail})"


def skipped(schedule: Schedule, running_for: float) -> str:
    return (
        f"{schedule.method} {schedule.path} ({schedule.when}): previous run still going "
        f"(started {running_for:.1f}s ago)"
    )
