"""When a schedule is due: pure functions of its timing, the last tick it was due, and now.

Times are Unix seconds. A cron expression is read in UTC (croniter, started from a UTC
datetime), so a schedule does not move with the host's time zone or its summer time. An
`every` schedule ticks at `anchor + k * every`: the anchor is the moment the schedule was
first seen, and then its last tick, so its phase survives restarts of the daemon.

Nothing here reads a clock or the store: the runner passes `now` and what it stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from croniter import CroniterBadDateError, CroniterError, croniter

CRON_FIELDS = "minute hour day month weekday"
CRON_HINT = f'five fields: {CRON_FIELDS}, e.g. "*/5 * * * *"'
# Ticks counted one by one after a long absence; past this, "at least" this many.
MAX_COUNTED = 1000
# A stored tick this far ahead of now means the clock went back: start again from now.
CLOCK_SLACK = 1.0


class Timed(Protocol):
    """What timing needs of a schedule (hearth.spec.Schedule): exactly one of the two."""

    @property
    def cron(self) -> str | None: ...

    @property
    def every(self) -> float | None: ...


def cron_problem(expression: str) -> str | None:
    """Why `expression` is not a cron expression Hearth runs; None if it is one."""
    fields = expression.split()
    if len(fields) != 5:
        plural = "" if len(fields) == 1 else "s"
        return f"not a valid cron expression ({CRON_HINT}); it has {len(fields)} field{plural}"
    if not croniter.is_valid(expression):
        return f"not a valid cron expression ({CRON_HINT})"
    try:
        _next_cron(expression, 0.0)
    except CroniterBadDateError:
        return "never comes (no date matches it, e.g. the 30th of February)"
    except (CroniterError, ValueError, OverflowError):
        return f"not a valid cron expression ({CRON_HINT})"
    return None


def next_due(when: Timed, after: float, anchor: float | None = None) -> float:
    """The first tick strictly after `after`. An `every` schedule's ticks are
    `anchor + k * every` (`anchor` defaults to `after`)."""
    if when.cron is not None:
        return _next_cron(when.cron, after)
    every = _every(when)
    base = after if anchor is None else anchor
    steps = math.floor((after - base) / every) + 1
    tick = base + steps * every
    # Floating point may land on `after` itself (or just below): then one more step.
    return tick if tick > after else tick + every


@dataclass(frozen=True)
class Due:
    """What a schedule should do now: fire once (however many ticks came), or wait."""

    fire: bool
    tick: float  # the tick to record as the last: the latest that came, or the anchor
    ticks: int  # ticks that came since the last recorded (at most MAX_COUNTED)
    next: float  # the first tick after now

    @property
    def missed(self) -> int:
        """Ticks that came and will not run on their own: all but the one fired."""
        return max(0, self.ticks - 1)


def due(when: Timed, last: float | None, now: float) -> Due:
    """Given the last tick recorded (None: never seen before) and now, what to do.

    A schedule seen for the first time starts from now: nothing runs for the past. After
    an absence with several ticks, it fires once for all of them (`ticks` says how many).
    A last tick in the future (the clock went back) is forgotten: it starts from now.
    """
    if last is None or last > now + CLOCK_SLACK:
        return Due(False, now, 0, next_due(when, now, anchor=now))
    ticks, latest = _count(when, last, now)
    if ticks == 0:
        return Due(False, last, 0, next_due(when, now, anchor=last))
    return Due(True, latest, ticks, next_due(when, now, anchor=latest))


def _count(when: Timed, last: float, now: float) -> tuple[int, float]:
    """How many ticks are in (last, now], and the latest of them (`last` if none)."""
    if when.cron is None:
        every = _every(when)
        ticks = max(0, math.floor((now - last) / every))
        return min(ticks, MAX_COUNTED), last + ticks * every
    ticks, latest = 0, last
    tick = _next_cron(when.cron, last)
    while tick <= now:
        ticks, latest = ticks + 1, tick
        if ticks == MAX_COUNTED:
            return ticks, _latest_cron(when.cron, now)
        tick = _next_cron(when.cron, tick)
    return ticks, latest


def _latest_cron(expression: str, now: float) -> float:
    """The last tick at or before `now` (croniter's get_prev is strictly before)."""
    previous = float(croniter(expression, _utc(now)).get_prev(float))
    following = _next_cron(expression, previous)
    return following if following <= now else previous


def _next_cron(expression: str, after: float) -> float:
    return float(croniter(expression, _utc(after)).get_next(float))


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _every(when: Timed) -> float:
    if when.every is None or when.every <= 0:
        raise ValueError("a schedule has a cron expression or a positive `every`")
    return when.every
