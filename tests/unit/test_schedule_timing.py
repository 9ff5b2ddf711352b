"""When a schedule is due (hearth.scheduler.timing): pure, times given, no clock."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hearth.scheduler.timing import MAX_COUNTED, cron_problem, due, next_due
from hearth.spec import Schedule


def at(text: str) -> float:
    """Unix time of an ISO date and time in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def cron(expression: str) -> Schedule:
    return Schedule(cron=expression)


def every(seconds: float) -> Schedule:
    return Schedule(every=seconds)


# cron: times of day in UTC


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/5 * * * *", "2024-01-01 12:01:30", "2024-01-01 12:05:00"),
        ("*/5 * * * *", "2024-01-01 12:05:00", "2024-01-01 12:10:00"),  # strictly after
        ("*/5 * * * *", "2024-01-01 12:04:59.999", "2024-01-01 12:05:00"),
        ("0 3 * * *", "2024-01-01 12:00:00", "2024-01-02 03:00:00"),
        ("30 2 * * mon", "2024-01-01 12:00:00", "2024-01-08 02:30:00"),  # 1 Jan 2024: Monday
        ("0 0 1 * *", "2024-01-31 23:59:59", "2024-02-01 00:00:00"),
        ("0 0 29 2 *", "2024-03-01 00:00:00", "2028-02-29 00:00:00"),
    ],
)
def test_the_next_cron_tick(expression, after, expected):
    assert next_due(cron(expression), at(after)) == at(expected)


def test_cron_reads_utc_whatever_the_hosts_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert next_due(cron("0 3 * * *"), at("2024-07-01 00:00:00")) == at("2024-07-01 03:00:00")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "*/5 * * * *",
        "0 3 * * 1-5",
        "15,45 */2 1 jan-jun *",
        "0 0 L * *",
        "0 0 * * 5#3",
    ],
)
def test_good_cron_expressions(expression):
    assert cron_problem(expression) is None


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("61 * * * *", "not a valid cron expression"),
        ("* 24 * * *", "not a valid cron expression"),
        ("* * * *", "it has 4 fields"),
        ("* * * * * *", "it has 6 fields"),  # seconds: not Hearth's syntax
        ("@hourly", "five fields"),
        ("a b c d e", "not a valid cron expression"),
        ("*/0 * * * *", "not a valid cron expression"),
        ("H * * * *", "not a valid cron expression"),
        ("0 0 30 2 *", "never comes"),
        ("0 0 31 4 *", "never comes"),
    ],
)
def test_bad_cron_expressions_say_why(expression, problem):
    assert problem in (cron_problem(expression) or "")


def test_the_count_of_fields_is_said():
    assert (cron_problem("@hourly") or "").endswith("it has 1 field")
    assert (cron_problem("* * *") or "").endswith("it has 3 fields")


# every: ticks at anchor + k * every


def test_every_counts_from_its_anchor():
    assert next_due(every(30), 100.0) == 130.0  # anchored at `after` by default
    assert next_due(every(30), 100.0, anchor=95.0) == 125.0
    assert next_due(every(30), 125.0, anchor=95.0) == 155.0  # strictly after
    assert next_due(every(30), 1000.0, anchor=95.0) == 1025.0
    assert next_due(every(30), 80.0, anchor=95.0) == 95.0  # before the anchor too


@given(
    anchor=st.floats(1e9, 2e9),
    period=st.floats(1, 7 * 86400),
    later=st.floats(0, 1e7),
)
def test_every_next_tick_is_after_and_within_one_period(anchor, period, later):
    after = anchor + later
    tick = next_due(every(period), after, anchor=anchor)
    assert after < tick <= after + period * 1.000001


# due: what to do given the last tick stored and now


def test_a_schedule_seen_for_the_first_time_starts_from_now():
    step = due(every(60), None, 1000.0)
    assert (step.fire, step.tick, step.ticks, step.next) == (False, 1000.0, 0, 1060.0)
    step = due(cron("*/5 * * * *"), None, at("2024-01-01 12:07:00"))
    assert not step.fire
    assert step.tick == at("2024-01-01 12:07:00")
    assert step.next == at("2024-01-01 12:10:00")


def test_before_the_next_tick_nothing_happens():
    step = due(every(60), 1000.0, 1059.9)
    assert (step.fire, step.tick, step.next) == (False, 1000.0, 1060.0)


def test_at_the_tick_it_fires_once():
    step = due(every(60), 1000.0, 1060.0)
    assert (step.fire, step.tick, step.ticks, step.missed, step.next) == (
        True,
        1060.0,
        1,
        0,
        1120.0,
    )
    step = due(every(60), 1000.0, 1060.2)  # a little late: the same tick, the phase kept
    assert (step.fire, step.tick, step.next) == (True, 1060.0, 1120.0)


def test_missed_ticks_fire_once_for_all():
    step = due(every(2), 100.0, 107.5)  # ticks at 102, 104, 106 went by
    assert (step.fire, step.tick, step.ticks, step.missed, step.next) == (True, 106.0, 3, 2, 108.0)
    start = at("2024-01-01 12:00:00")
    step = due(cron("*/5 * * * *"), start, at("2024-01-01 12:17:00"))
    assert step.fire
    assert step.ticks == 3  # 12:05, 12:10, 12:15
    assert step.tick == at("2024-01-01 12:15:00")
    assert step.next == at("2024-01-01 12:20:00")


def test_after_firing_the_recorded_tick_waits_for_the_next():
    first = due(every(60), 1000.0, 1060.0)
    again = due(every(60), first.tick, 1060.1)
    assert not again.fire


def test_a_long_absence_is_counted_up_to_a_bound():
    step = due(cron("* * * * *"), at("2024-01-01 00:00:00"), at("2024-03-01 00:00:30"))
    assert step.fire
    assert step.ticks == MAX_COUNTED
    assert step.tick == at("2024-03-01 00:00:00")  # still the latest tick
    step = due(every(1), 0.0, 1e7 + 0.5)
    assert (step.ticks, step.tick) == (MAX_COUNTED, 1e7)


def test_a_tick_recorded_in_the_future_starts_again_from_now():
    """The clock went back: waiting for the old tick could stall the schedule for long."""
    step = due(every(60), 5000.0, 1000.0)
    assert (step.fire, step.tick, step.next) == (False, 1000.0, 1060.0)
