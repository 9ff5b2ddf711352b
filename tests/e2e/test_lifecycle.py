"""Zero-downtime changes and self-healing, each under a bounded background load."""

import json
import os
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import EXAMPLES, wait_for


class Load:
    """Bounded background traffic: a few threads, each with a keep-alive client."""

    def __init__(self, url: str, threads: int = 4, max_seconds: float = 120.0):
        self.url = url
        self.stop_at = time.monotonic() + max_seconds
        self.stopped = threading.Event()
        self.bodies: Counter[str] = Counter()
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        for t in self.threads:
            t.join(30)

    @property
    def sent(self) -> int:
        return sum(self.bodies.values()) + len(self.failures)

    def _run(self):
        with httpx.Client(timeout=30) as client:
            while not self.stopped.is_set() and time.monotonic() < self.stop_at:
                try:
                    response = client.get(self.url)
                    outcome = response.text if response.status_code == 200 else None
                    failure = (
                        None if outcome is not None else f"{response.status_code} {response.text}"
                    )
                except httpx.TransportError as exc:
                    outcome, failure = None, repr(exc)
                with self.lock:
                    if failure is None:
                        self.bodies[outcome] += 1
                    else:
                        self.failures.append(failure)


def version_fn(fn_dir, name, text):
    return fn_dir(
        f"{name}-{text}",
        {
            "main.py": f"""
            import asyncio

            async def handle(request):
                await asyncio.sleep(0.005)
                return "{text}"
        """,
            "hearth.toml": f'name = "{name}"\n[scale]\nmin = 2\n[limits]\ndrain = "10s"\n',
        },
    )


def test_deploy_rollback_traffic_lose_no_request(daemon, fn_dir):
    v1 = daemon.deploy(version_fn(fn_dir, "steady", "one"))["version"]
    with Load(daemon.gateway + "/fn/steady/") as load:
        wait_for(lambda: load.sent > 20, what="load running")
        v2 = daemon.deploy(version_fn(fn_dir, "steady", "two"))["version"]
        wait_for(lambda: load.bodies["two"] > 20, what="v2 serving")
        daemon.cli("rollback", "steady", check=True)
        seen = load.bodies["one"]
        wait_for(lambda: load.bodies["one"] > seen + 20, what="rolled back to v1")
        daemon.cli("traffic", "steady", f"{v1}=50", f"{v2}=50", check=True)
        before = dict(load.bodies)
        wait_for(
            lambda: (
                load.bodies["one"] > before["one"] + 30 and load.bodies["two"] > before["two"] + 30
            ),
            what="both versions serving",
        )
        daemon.cli("traffic", "steady", str(v2), check=True)
        seen = load.bodies["two"]
        wait_for(lambda: load.bodies["two"] > seen + 20, what="all traffic on v2")
    print(f"sent {load.sent} ({dict(load.bodies)}), failed {len(load.failures)}")
    assert load.failures == [], load.failures[:5]
    assert set(load.bodies) == {"one", "two"}
    assert load.sent > 200
    versions = json.loads(daemon.cli("versions", "steady", "--json", check=True).stdout)
    shares = {v["number"]: (v["status"], v["traffic"]) for v in versions}
    assert shares[v2] == ("serving", 100.0)
    assert shares[v1] == ("ready", 0.0)
    kinds = [e["kind"] for e in daemon.events("steady")]
    assert {"deploy", "rollback", "traffic"} <= set(kinds)
    # Once drained, the old version's instances are gone: only v2's remain.
    wait_for(
        lambda: {i["version"] for i in daemon.status("steady")["instances"]} == {v2},
        what="v1 instances stopped",
    )


def test_traffic_to_unknown_version_is_refused(daemon):
    daemon.deploy(EXAMPLES / "hello")
    result = daemon.cli("traffic", "hello", "999")
    assert result.returncode == 1
    assert "no version 999" in result.stderr
    assert daemon.get("/fn/hello/").status_code == 200


def test_killed_instance_fails_only_its_own_requests(daemon, fn_dir):
    folder = fn_dir(
        "sturdy",
        {
            "main.py": """
            import asyncio, os

            async def handle(request):
                await asyncio.sleep(float(request.query_params.get("s", "0.005")))
                return str(os.getpid())
        """,
            "hearth.toml": "[scale]\nmin = 2\n",
        },
    )
    daemon.deploy(folder)
    pids = {i["pid"] for i in daemon.status("sturdy")["instances"]}
    victim = min(pids)
    with Load(daemon.gateway + "/fn/sturdy/") as load:
        wait_for(lambda: load.sent > 50, what="load running")
        os.kill(victim, signal.SIGKILL)
        began = time.monotonic()
        wait_for(
            lambda: len({i["pid"] for i in daemon.status("sturdy")["instances"]} - pids) == 1,
            what="replacement ready",
        )
        recovery = time.monotonic() - began
        sent_at_recovery = load.sent
        wait_for(lambda: load.sent > sent_at_recovery + 50, what="more load")
    # Only requests in flight on the victim may fail, and the load has 4 clients.
    assert len(load.failures) <= 4, load.failures
    assert all(f.startswith("502") for f in load.failures), load.failures
    print(f"sent {load.sent}, failed {len(load.failures)}, replacement in {recovery:.2f}s")


def test_crash_loop_backs_off_and_spares_neighbours(daemon, fn_dir):
    marker = daemon.function_data("crashy") / "broken"
    folder = fn_dir(
        "crashy",
        {
            "main.py": """
            import os
            if os.path.exists(os.path.join(os.environ["HEARTH_DATA"], "broken")):
                raise RuntimeError("cannot start: broken on purpose")

            def handle(request):
                return "fine"
        """,
        },
    )
    daemon.deploy(folder)
    daemon.deploy(EXAMPLES / "hello")
    marker.write_text("x")
    (pid,) = [i["pid"] for i in daemon.status("crashy")["instances"]]
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: sum(e["kind"] == "start-failed" for e in daemon.events("crashy")) >= 4,
        timeout=30,
        what="several failed restarts",
    )
    delays = [
        float(m.group(1))
        for e in daemon.events("crashy")
        if (m := re.search(r"next in ([\d.]+)s", e["message"]))
    ]
    assert delays == sorted(delays) and delays[-1] > delays[0]
    status = daemon.status("crashy")
    assert "broken on purpose" in status["last_error"]
    assert status["instances"] == []
    for _ in range(20):
        assert daemon.get("/fn/hello/").status_code == 200
    marker.unlink()
    wait_for(
        lambda: daemon.get("/fn/crashy/").status_code == 200,
        timeout=40,
        what="recovery once the cause is gone",
    )


def test_blocked_event_loop_is_replaced(daemon, fn_dir):
    folder = fn_dir(
        "blocker",
        {
            "main.py": """
            import os, time

            async def handle(request):
                if request.query_params.get("block"):
                    time.sleep(60)  # blocks the event loop: no heartbeat
                return str(os.getpid())
        """,
            "hearth.toml": '[limits]\nliveness = "2s"\ntimeout = "30s"\n',
        },
    )
    daemon.deploy(folder)
    (pid,) = [i["pid"] for i in daemon.status("blocker")["instances"]]
    with httpx.Client(timeout=60) as client:
        blocked = client.get(daemon.gateway + "/fn/blocker/?block=1")
    assert blocked.status_code == 502
    new = wait_for(lambda: daemon.get("/fn/blocker/").text, what="replacement serving")
    assert new != str(pid)
    events = daemon.events("blocker")
    assert any(e["kind"] == "killed" and "heartbeat" in e["message"] for e in events)


def test_stuck_handler_gets_504_and_instance_is_recycled(daemon, fn_dir):
    folder = fn_dir(
        "stuck",
        {
            "main.py": """
            import asyncio, os

            async def handle(request):
                if request.query_params.get("hang"):
                    await asyncio.sleep(3600)
                return str(os.getpid())
        """,
            "hearth.toml": '[limits]\ntimeout = "1s"\ndrain = "1s"\n',
        },
    )
    daemon.deploy(folder)
    first = daemon.get("/fn/stuck/").text
    assert daemon.get("/fn/stuck/?hang=1").status_code == 504
    wait_for(lambda: daemon.get("/fn/stuck/").text != first, what="a fresh instance")
    assert any(e["kind"] == "recycle" for e in daemon.events("stuck"))


def test_memory_limit_replaces_the_instance(daemon, fn_dir):
    folder = fn_dir(
        "hungry",
        {
            "main.py": """
            import os
            hoard = []

            def handle(request):
                if request.query_params.get("eat"):
                    hoard.append(bytearray(200 * 1024 * 1024))
                return str(os.getpid())
        """,
            "hearth.toml": '[limits]\nmemory = "128MB"\n',
        },
    )
    daemon.deploy(folder)
    daemon.deploy(EXAMPLES / "hello")
    first = daemon.get("/fn/hungry/").text
    # The watchdog may kill the instance before or after this answer goes out.
    assert daemon.get("/fn/hungry/?eat=1").status_code in (200, 502)
    wait_for(
        lambda: daemon.get("/fn/hungry/").text not in ("", first),
        timeout=20,
        what="replacement after the kill",
    )
    events = daemon.events("hungry")
    assert any(e["kind"] == "killed" and "memory limit" in e["message"] for e in events)
    assert daemon.get("/fn/hello/").status_code == 200


def test_dead_zygote_is_restarted_and_instances_keep_serving(daemon, fn_dir):
    daemon.deploy(EXAMPLES / "hello")
    with daemon.api_client() as api:
        zygotes = {z["key"]: z["pid"] for z in api.get("/v1/info").json()["zygotes"]}
    key = f"hello@{daemon.status('hello')['version']}"
    with Load(daemon.gateway + "/fn/hello/") as load:
        wait_for(lambda: load.sent > 20, what="load running")
        os.kill(zygotes[key], signal.SIGKILL)
        os.kill(zygotes["root"], signal.SIGKILL)
        with daemon.api_client() as api:
            wait_for(
                lambda: [
                    z
                    for z in api.get("/v1/info").json()["zygotes"]
                    if z["key"] == key and z["pid"] != zygotes[key]
                ],
                what="zygote restarted",
            )
        count = load.sent
        wait_for(lambda: load.sent > count + 20, what="more load")
    assert load.failures == []
    # A new instance can still be forked.
    folder = fn_dir("after-zygote", {"main.py": "def handle(r):\n    return 'forked'\n"})
    daemon.deploy(folder)
    assert daemon.get("/fn/after-zygote/").text == "forked"


def _descendants(pid: int) -> set[int]:
    found, frontier = set(), [pid]
    while frontier:
        parent = frontier.pop()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                    found.add(int(entry))
                    frontier.append(int(entry))
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def test_daemon_sigkill_leaves_no_orphans_and_restart_restores(fresh_daemon, fn_dir):
    daemon = fresh_daemon.start()
    v1 = daemon.deploy(version_fn(fn_dir, "phoenix", "one"))["version"]
    v2 = daemon.deploy(version_fn(fn_dir, "phoenix", "two"))["version"]
    daemon.cli("traffic", "phoenix", f"{v1}=30", f"{v2}=70", check=True)
    children = _descendants(daemon.proc.pid)
    assert len(children) >= 5  # two zygote-forked versions x 2 instances, plus the zygote
    daemon.stop(signal.SIGKILL)
    wait_for(lambda: not _alive(children), timeout=15, what="instances and zygotes to exit")
    daemon.start()
    status = daemon.status("phoenix")
    assert status["traffic"] == {str(v1): 30, str(v2): 70}
    bodies = Counter(daemon.get("/fn/phoenix/").text for _ in range(60))
    assert set(bodies) == {"one", "two"}
    assert any(e["kind"] == "traffic" for e in daemon.events("phoenix"))


def test_daemon_sigterm_finishes_requests_and_runs_teardown(fresh_daemon, fn_dir):
    folder = fn_dir(
        "graceful",
        {
            "main.py": """
            import asyncio
            import os

            async def handle(request):
                await asyncio.sleep(1.5)
                return "finished"

            def teardown():
                open(os.path.join(os.environ["HEARTH_DATA"], "teardown"), "w").write("ran")
        """,
        },
    )
    daemon = fresh_daemon.start()
    daemon.deploy(folder)
    results = []
    worker = threading.Thread(target=lambda: results.append(daemon.get("/fn/graceful/")))
    worker.start()
    wait_for(
        lambda: daemon.status("graceful")["instances"][0]["in_flight"] == 1,
        what="request in flight",
    )
    assert daemon.stop(signal.SIGTERM) == 0
    worker.join(10)
    assert results and results[0].status_code == 200 and results[0].text == "finished"
    assert fresh_daemon.read_data("graceful", "teardown") == "ran"


@pytest.mark.parametrize("weights", [["1=0"], ["x=5"]])
def test_bad_traffic_arguments_are_refused(daemon, weights):
    daemon.deploy(EXAMPLES / "hello")
    result = daemon.cli("traffic", "hello", *weights)
    assert result.returncode == 1
    assert daemon.get("/fn/hello/").status_code == 200
