"""Schedules end to end: `[[schedule]]` in hearth.toml makes the daemon call the function
through its own gateway, once per tick, never overlapping itself, private functions too,
and once for the ticks it missed while it was down.

Each function appends a line per run to a file in its HEARTH_DATA; the tests read that
file and the function's events. They assert order (how far apart runs start, whether they
overlap), never how long anything took.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import time

import httpx
import pytest

from tests.e2e.conftest import EXAMPLES, wait_for

# One line per run: start and end (wall clock), the method, path and headers it saw.
RECORDER = """
import json, os, time

PATH = os.path.join(os.environ["HEARTH_DATA"], "runs.jsonl")
PAUSE = float(os.environ.get("PAUSE", "0"))

def handle(request):
    start = time.time()
    time.sleep(PAUSE)
    line = {
        "start": start,
        "end": time.time(),
        "method": request.method,
        "path": request.url.path,
        "schedule": request.headers.get("x-hearth-schedule"),
        "internal": request.headers.get("x-hearth-internal"),
        "authorization": request.headers.get("authorization"),
    }
    with open(PATH, "a") as runs:
        runs.write(json.dumps(line) + "\\n")
    return "ran"
"""


def recorder(fn_dir, name: str, toml: str, pause: float = 0.0):
    return fn_dir(
        name,
        {
            "main.py": RECORDER,
            "hearth.toml": f'name = "{name}"\n[env]\nPAUSE = "{pause}"\n{toml}',
        },
    )


def runs(daemon, name: str) -> list[dict]:
    path = daemon.function_data(name) / "runs.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def kinds(daemon, name: str, kind: str) -> list[dict]:
    return [e for e in daemon.events(name) if e["kind"] == kind]


def test_every_second_runs_once_per_tick(daemon, fn_dir):
    name = "sched-every"
    daemon.deploy(recorder(fn_dir, name, '[[schedule]]\nevery = "1s"\npath = "/tasks/tick"'))
    seen = wait_for(lambda: len(r := runs(daemon, name)) >= 3 and r, timeout=30, what="3 runs")
    starts = [run["start"] for run in seen]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= 0.8 for gap in gaps), gaps  # a tick is never run twice
    first = seen[0]
    assert (first["method"], first["schedule"]) == ("POST", "every 1s")
    assert first["path"].endswith("/tasks/tick")
    assert first["internal"] is None  # the daemon's secret never reaches the function
    events = wait_for(lambda: kinds(daemon, name, "schedule"), what="schedule events")
    assert "POST /tasks/tick -> 200 in " in events[0]["message"]
    assert not kinds(daemon, name, "schedule-failed")
    daemon.cli("rm", name, check=True)


def test_a_run_still_going_skips_the_next_ticks_and_never_overlaps(daemon, fn_dir):
    name = "sched-slow"
    daemon.deploy(recorder(fn_dir, name, '[[schedule]]\nevery = "1s"', pause=2.5))
    seen = wait_for(lambda: len(r := runs(daemon, name)) >= 2 and r, timeout=40, what="2 runs")
    skipped = wait_for(lambda: kinds(daemon, name, "schedule-skipped"), what="skipped ticks")
    assert "previous run still going (started " in skipped[0]["message"]
    ordered = sorted(seen, key=lambda run: run["start"])
    for before, after in itertools.pairwise(ordered):
        assert after["start"] >= before["end"], (before, after)  # no two runs at once
    daemon.cli("rm", name, check=True)


def test_a_private_function_is_reached_by_its_schedule(daemon, fn_dir):
    name = "sched-private"
    toml = '[access]\npublic = false\n[[schedule]]\nevery = "1s"\nmethod = "PUT"\npath = "/x?y=1"'
    daemon.deploy(recorder(fn_dir, name, toml))
    assert daemon.get(f"/fn/{name}/x").status_code == 401  # private indeed
    seen = wait_for(lambda: runs(daemon, name), timeout=30, what="a run")
    assert (seen[0]["method"], seen[0]["authorization"], seen[0]["internal"]) == ("PUT", None, None)
    assert seen[0]["path"].endswith("/x")
    daemon.cli("rm", name, check=True)


def test_hearth_schedules_lists_next_and_last_runs(daemon, fn_dir):
    name = "sched-list"
    toml = (
        '[[schedule]]\ncron = "0 3 * * *"\nmethod = "GET"\npath = "/nightly"\n'
        '[[schedule]]\nevery = "1s"\n'
    )
    daemon.deploy(recorder(fn_dir, name, toml))
    wait_for(lambda: kinds(daemon, name, "schedule"), timeout=30, what="a run")
    listed = json.loads(daemon.cli("schedules", name, "--json", check=True).stdout)
    now = time.time()
    nightly, often = listed
    assert (nightly["schedule"], nightly["method"], nightly["path"]) == (
        "0 3 * * *",
        "GET",
        "/nightly",
    )
    assert now < nightly["next_run"] <= now + 86400
    assert nightly["last_run"] is None
    assert (often["every"], often["method"], often["path"]) == (1.0, "POST", "/")
    assert often["next_run"] > now - 0.5
    assert often["last_run"] is not None
    table = daemon.cli("schedules", check=True).stdout
    assert name in table and "UTC" in table and "GET /nightly" in table
    with daemon.api_client() as api:
        assert api.get("/v1/functions/no-such-function/schedules").status_code == 404
        read = api.post("/v1/tokens", json={"scope": "read", "name": "sched"}).json()["token"]
    with daemon.api_client(read) as api:
        rows = api.get("/v1/schedules").json()
        assert {row["function"] for row in rows} >= {name}
    daemon.cli("rm", name, check=True)
    assert name not in daemon.cli("schedules", check=True).stdout  # forgotten with it


def test_ticks_missed_while_down_run_once_at_start(fresh_daemon, fn_dir):
    name = "sched-restart"
    daemon = fresh_daemon.start()
    daemon.deploy(recorder(fn_dir, name, '[[schedule]]\nevery = "2s"'))
    wait_for(lambda: runs(daemon, name), timeout=30, what="a first run")
    stopping = time.time()  # the last tick recorded is at or before this
    assert daemon.stop() == 0
    # Down until two more ticks have come (stopping and starting take part of that).
    time.sleep(max(0.0, stopping + 4.3 - time.time()))
    daemon.start()
    caught = wait_for(
        lambda: [e for e in kinds(daemon, name, "schedule") if "while down" in e["message"]],
        timeout=30,
        what="the catch-up run",
    )
    assert "ticks while down: ran once" in caught[0]["message"]
    missed = int(caught[0]["message"].split("missed ")[1].split(" ")[0])
    assert missed >= 2
    # The next regular tick runs as usual, and the catch-up was not repeated.
    wait_for(
        lambda: kinds(daemon, name, "schedule")[-1]["id"] > caught[0]["id"],
        timeout=30,
        what="a regular run after the catch-up",
    )
    events = kinds(daemon, name, "schedule")
    assert len([e for e in events if "while down" in e["message"]]) == 1
    assert not kinds(daemon, name, "schedule-failed")


# The example, as plain ASGI: no Hearth around it.


@pytest.fixture
def cleanup_app(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARTH_DATA", str(tmp_path))
    spec = importlib.util.spec_from_file_location("cleanup_example", EXAMPLES / "cleanup/main.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


async def test_the_cleanup_example_removes_old_uploads_and_counts_runs(cleanup_app, tmp_path):
    uploads = tmp_path / "tmp-uploads"
    uploads.mkdir()
    (uploads / "old").write_text("x")
    os.utime(uploads / "old", (time.time() - 7200, time.time() - 7200))
    (uploads / "new").write_text("y")
    transport = httpx.ASGITransport(app=cleanup_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        assert (await client.get("/")).json() == {"runs": 0, "uploads": 2}
        answer = await client.post("/tasks/cleanup", headers={"x-hearth-schedule": "every 1m"})
        assert answer.json() == {"removed": 1, "runs": 1, "schedule": "every 1m"}
        assert (await client.post("/tasks/cleanup")).json()["removed"] == 0
        assert (await client.get("/")).json() == {"runs": 2, "uploads": 1}
    assert sorted(p.name for p in uploads.iterdir()) == ["new"]


def test_the_cleanup_example_deploys_with_its_schedule(daemon):
    daemon.deploy(EXAMPLES / "cleanup")
    (listed,) = json.loads(daemon.cli("schedules", "cleanup", "--json", check=True).stdout)
    assert (listed["every"], listed["method"], listed["path"]) == (60.0, "POST", "/tasks/cleanup")
    assert daemon.request("POST", "/fn/cleanup/tasks/cleanup").json()["runs"] >= 1
    daemon.cli("rm", "cleanup", "--purge", check=True)
