"""The benchmark harness: wrk output parsing, and a tiny --quick run end to end."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import wrk  # noqa: E402

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8080/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.35ms    2.53ms  33.19ms   93.84%
  Latency Distribution
     50%    3.90ms
     75%    4.20ms
     90%    5.00ms
     99%  850.00us
  15582 requests in 2.00s, 1.93MB read
  Socket errors: connect 1, read 30, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   7779.54
Transfer/sec:      0.96MB
"""


def test_parse_wrk_report():
    run = wrk.parse(WRK_OUTPUT)
    assert run.rps == 7779.54
    assert run.p50_ms == 3.9
    assert run.p99_ms == 0.85
    assert run.requests == 15582
    assert run.errors == 4 + 1 + 30 + 2


def test_closing_server_read_errors_are_not_errors():
    closing = WRK_OUTPUT.replace("15582 requests", "30 requests")
    assert wrk.parse(closing, closes=True).errors == 4 + 1 + 2


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk not installed (apt-get install -y wrk)"
)
def test_quick_run_measures_every_scenario(tmp_path):
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--quick",
            "--duration",
            "1",
            "--out",
            str(tmp_path),
            "--no-report",
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    data = json.loads((tmp_path / "latest.json").read_text())
    rows = {(r["scenario"], r["system"]): r for r in data["results"]}
    expected = [("hello", "direct"), ("hello", "hearth"), ("hello", "process-per-request")]
    systems = ("direct", "hearth", "hearth-no-access-log", "hearth-metrics-off")
    expected += [("asgi-hello", s) for s in systems]
    assert set(data["neighbour_ms"]) == {"hearth", "hearth-sandbox-off"}
    assert data["neighbour_ms"]["hearth"]["beside"]["p99"] > 0
    assert [v["instances"] for v in data["many"].values()] == [10, 20]
    if os.environ.get("HEARTH_TEST_PG"):
        expected += [
            ("pg", s)
            for s in (
                "direct",
                "hearth-pooled",
                "hearth-connect-per-request",
                "process-per-request",
            )
        ]
        assert data["cold_start_ms"]["heavy"]["p50"] > 0
    for key in expected:
        assert rows[key]["rps"] > 0, key
        assert rows[key]["errors"] == 0, rows[key]
    assert data["ratios"]["hello.hearth/direct"] > 0
    assert data["cold_start_ms"]["hello"]["p50"] > 0
    assert data["cold_start_ms"]["fresh_interpreter"]["p50"] > 0
    assert data["cold_start_errors"] == 0
    assert data["deploy_ms"]["p50"] > 0
    assert (
        0 < data["memory_mb"]["instance_private"] < data["memory_mb"]["hundred_instances_private"]
    )
    for system in ("direct", "hearth"):
        assert data["websocket"][system]["round_trips_per_s"] > 0, data["websocket"]
    backup = data["backup"]
    assert backup["size_bytes"] > 4 * 1024**2 and backup["seconds_p50"] > 0  # the blob is in
    assert backup["during"]["errors"] == backup["without"]["errors"] == 0
    assert backup["backups_during_load"] >= 1 and backup["during"]["p99_ms"] > 0
    deferred = data["async"]
    assert deferred["accepted"] > 0 and deferred["accepted_per_s"] > 0
    assert deferred["completed"] == deferred["accepted"] and deferred["completed_per_s"] > 0
    assert deferred["errors"] == deferred["failed"] == 0
    assert deferred["accept_p99_ms"] > 0
    burst = data["burst"]
    assert burst["clients"] == 500 and burst["errors"] == 0 and burst["all_served_s"] > 0
    timeline = data["steps"]["timeline"]
    assert [r["clients"] for r in timeline][:2] == [1, 1] and timeline[-1]["clients"] == 0
    assert sum(r["errors"] for r in timeline) == 0
    busiest = max(timeline, key=lambda r: r["clients"])
    assert busiest["clients"] == 256 and busiest["requests"] > 0
    # The autoscaler answered the steps: more instances under 256 clients than under 1,
    # each change an event with its reason.
    summary = data["steps"]["phases_summary"]
    assert summary["256"]["max_instances"] > summary["1"]["max_instances"]
    assert any(e["message"].startswith("scaled 1 -> ") for e in data["steps"]["events"])
