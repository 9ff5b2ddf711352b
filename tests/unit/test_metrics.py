"""The pure parts of monitoring: quantiles from buckets, trace ids, minute rollups."""

from bisect import bisect_left

import pytest

from hearth.gateway.meter import BUCKETS, Meter, quantile
from hearth.gateway.trace import trace_of
from hearth.metrics.history import History, Point
from hearth.metrics.tally import Tally, exit_reason


def test_quantiles_interpolate_within_a_bucket():
    meter = Meter()
    for _ in range(100):
        meter.record(200, 0.004, 0.0, 0, 0)  # all in the (3 ms, 5 ms] bucket
    assert 0.003 < quantile(meter.duration, 0.5) <= 0.005
    assert quantile(meter.duration, 0.99) <= 0.005
    assert quantile([0] * (len(BUCKETS) + 1), 0.5) == 0.0


def test_quantiles_follow_the_distribution():
    meter = Meter()
    for _ in range(98):
        meter.record(200, 0.001, 0.0, 0, 0)
    for _ in range(2):
        meter.record(500, 2.5, 0.0, 0, 0)
    assert quantile(meter.duration, 0.5) <= 0.001
    assert 2.0 < quantile(meter.duration, 0.99) <= 3.0
    assert meter.codes[2] == 98 and meter.codes[5] == 2
    meter.record(200, 1000.0, 0.0, 0, 0)  # past the last bound
    assert quantile(meter.duration, 1.0) == BUCKETS[-1]


@pytest.mark.parametrize(
    ("header", "continued"),
    [
        (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
        (b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", True),
        (b"00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        (b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        (b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", False),
        (b"garbage", False),
    ],
)
def test_traceparents_are_continued_only_when_valid(header, continued):
    trace = trace_of(None, header, sampled=False)
    assert (trace.trace == b"4bf92f3577b34da6a3ce929d0e0e4736") is continued
    assert len(trace.trace) == 32 and len(trace.span) == 16
    assert trace.parent == (b"00f067aa0ba902b7" if continued else b"")
    assert trace.traceparent.startswith(b"00-" + trace.trace + b"-" + trace.span + b"-")


def test_request_ids_must_be_short_and_printable():
    assert trace_of(b"req-1", None, False).request_id == b"req-1"
    for bad in (b"", b"a b", b"x" * 201, b"\x00x"):
        trace = trace_of(bad, None, False)
        assert trace.request_id == trace.trace


def test_seconds_roll_up_into_minutes():
    history = History(seconds=120)
    buckets = [0] * (len(BUCKETS) + 1)
    buckets[bisect_left(BUCKETS, 0.004)] = 10
    done = []
    for t in range(600, 600 + 125):
        point = Point(t, 1, 10, 1 if t % 2 else 0, 0.004, 0.005, 2 + (t == 610), 1, 0, 100)
        minute = history.add("f", point, buckets)
        if minute is not None:
            done.append(minute)
    assert [m.t for m in done] == [600, 660]
    first = done[0]
    assert (first.seconds, first.requests, first.errors) == (60, 600, 30)
    assert first.instances == 3  # the most seen in the minute
    assert 0.003 < first.p50 <= 0.005
    assert len(history.rings["f"]) == 120
    assert [p.t for p in history.points("f", 700)] == list(range(700, 725))


def test_exit_reasons_and_forgetting():
    assert exit_reason(True, None) == "stopped"
    assert exit_reason(False, None) == "crash"
    assert exit_reason(False, "no heartbeat for 12.0s (event loop blocked?)") == "hang"
    assert exit_reason(False, "over its memory limit (300 MB > 256 MB)") == "memory"
    tally = Tally()
    tally.started("a", 1, True, 0.02)
    tally.exited("a", 1, "crash")
    tally.deployed("a", True, 0.3)
    tally.started("b", 1, False, 0.02)
    tally.forget("a")
    assert list(tally.starts) == [("b", 1, False)] and not tally.exits and not tally.deploys


def test_access_lines_are_json_whatever_the_client_sent():
    import json
    import marshal

    from hearth.gateway.meter import Finished
    from hearth.metrics.writer import Lines

    raw = (
        1795827697.25,
        0.0123,
        0.001,
        200,
        5,
        321,
        b"GET",
        b'/fn/f/"quoted"\\and\xff?x=1',
        b'id"with\\',
        b"a" * 32,
        b"b" * 16,
        b"",
        b"01",
        None,
        b"10.0.0.1",
        "f",
        3,
    )
    [back] = marshal.loads(marshal.dumps([raw]))  # as the writer receives it
    assert Finished._make(back).url == raw[7]
    row = json.loads(Lines().line(back))
    plain = (*raw[:7], b"/fn/f/x?y=1", b"req-1", *raw[9:])
    assert json.loads(Lines().line(plain))["path"] == "/fn/f/x?y=1"  # the fast way
    assert row == {
        "time": "2026-11-28T01:01:37.250Z",
        "request_id": 'id"with\\',
        "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        "method": "GET",
        "path": '/fn/f/"quoted"\\and\xff?x=1',
        "status": 200,
        "bytes_in": 5,
        "bytes_out": 321,
        "duration_ms": 12.3,
        "queue_ms": 1.0,
        "instance": None,
        "version": 3,
        "client": "10.0.0.1",
    }
