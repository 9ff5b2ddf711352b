"""The managed key-value store: a Redis of each function's own, shared by its instances,
kept across deploys and restarts, closed to other functions, in backups."""

from __future__ import annotations

import os
import shutil
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import EXAMPLES, Daemon, wait_for
from tests.e2e.test_backup import restore

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="needs redis-server (apt-get install redis-server; .ci/run installs it)",
)

PROBE = """
import os, redis

NAME = os.environ["HEARTH_FUNCTION"]
store = redis.from_url(os.environ["REDIS_URL"])

def attempt(call):
    try:
        return repr(call())
    except Exception as exc:
        return "refused: " + type(exc).__name__

def handle(request):
    other = request.query_params.get("other")
    if request.query_params.get("write"):
        store.set("owner", NAME)
    answer = {"owner": (store.get("owner") or b"").decode(), "url": os.environ["REDIS_URL"]}
    answer["config"] = attempt(lambda: store.config_set("maxmemory", 10**10))
    answer["shutdown"] = attempt(lambda: store.shutdown(nosave=True))
    answer["acl"] = attempt(lambda: store.acl_setuser("intruder", enabled=True))
    if other:
        answer["other"] = attempt(lambda: redis.from_url(other).get("owner"))
        folder = other.removeprefix("unix://").rsplit("/", 1)[0]
        answer["listing"] = attempt(lambda: os.listdir(folder))
    return answer
"""


def test_a_counter_shared_by_three_instances_sums_and_lasts(fresh_daemon, tmp_path):
    daemon = fresh_daemon.start()
    folder = tmp_path / "kv-counter"
    shutil.copytree(EXAMPLES / "kv-counter", folder)
    daemon.deploy(folder)
    assert len(daemon.status("kv-counter")["instances"]) == 3

    def hit(_: int) -> int:
        with httpx.Client(timeout=30) as client:
            return client.post(f"{daemon.gateway}/fn/kv-counter/hit").status_code

    with ThreadPoolExecutor(24) as pool:
        codes = list(pool.map(hit, range(300)))
    assert codes == [200] * 300
    count = daemon.get("/fn/kv-counter/").json()
    assert count["hits"] == 300 == sum(count["by_instance"].values())
    assert len(count["by_instance"]) >= 2, count  # more than one instance counted

    # a new version, a restart, a crash of the server: the count stays
    (folder / "main.py").write_text((folder / "main.py").read_text() + "\n# v2\n")
    daemon.deploy(folder)
    assert daemon.get("/fn/kv-counter/").json()["hits"] == 300
    assert daemon.stop() == 0
    daemon.start()
    assert daemon.get("/fn/kv-counter/").json()["hits"] == 300
    assert daemon.request("POST", "/fn/kv-counter/hit").json()["hits"] == 301


def test_functions_cannot_reach_each_others_store(fresh_daemon, fn_dir):
    daemon = fresh_daemon.start()
    kv = "[kv]\nenabled = true\n"
    for name in ("alpha", "beta"):
        daemon.deploy(fn_dir(name, {"main.py": PROBE, "hearth.toml": kv}))
    alpha = daemon.get("/fn/alpha/?write=1").json()
    beta = daemon.get("/fn/beta/?write=1").json()
    assert alpha["owner"] == "alpha" and beta["owner"] == "beta"  # the same key, apart
    assert alpha["url"] != beta["url"]
    seen = daemon.get("/fn/alpha/", params={"other": beta["url"]}).json()
    assert seen["owner"] == "alpha"
    assert seen["other"].startswith("refused"), seen  # beta's socket is not alpha's to use
    assert seen["listing"].startswith("refused"), seen
    for command in ("config", "shutdown", "acl"):  # its cap, its server, its users: fixed
        assert seen[command] == "refused: NoPermissionError", seen
    assert daemon.get("/fn/beta/").json()["owner"] == "beta"  # still up, still its own


def test_a_backup_holds_the_store_and_restore_brings_it_back(fresh_daemon, fn_dir, tmp_path):
    daemon = fresh_daemon.start()
    daemon.deploy(fn_dir("keeper", {"main.py": PROBE, "hearth.toml": "[kv]\nenabled = true\n"}))
    assert daemon.get("/fn/keeper/?write=1").json()["owner"] == "keeper"
    archive = tmp_path / "backup.tar.gz"
    daemon.cli("backup", str(archive), check=True)
    assert daemon.stop() == 0
    restored = tmp_path / "restored"
    assert restore(archive, restored).returncode == 0
    again = Daemon(restored).start()
    try:
        assert again.get("/fn/keeper/").json()["owner"] == "keeper"
    finally:
        assert again.stop() == 0


def test_a_dead_server_is_started_again_with_its_data(fresh_daemon, fn_dir):
    daemon = fresh_daemon.start()
    daemon.deploy(fn_dir("sturdy", {"main.py": PROBE, "hearth.toml": "[kv]\nenabled = true\n"}))
    daemon.get("/fn/sturdy/?write=1")
    pid = next(
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _cmdline(p).endswith("sturdy/kv.sock")
    )
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: "kv-exited" in {e["kind"] for e in daemon.events("sturdy")})

    def answers() -> bool:  # while it is down, the function's own calls fail (500)
        response = daemon.get("/fn/sturdy/")
        return response.status_code == 200 and response.json()["owner"] == "sturdy"

    wait_for(answers, what="the KV server started again, with its data")


def test_kv_is_refused_at_deploy_where_redis_server_is_missing(fresh_daemon, fn_dir, monkeypatch):
    monkeypatch.setenv("HEARTH_REDIS_SERVER", "/nonexistent/redis-server")
    daemon = fresh_daemon.start()
    assert "no redis-server" in daemon.log()
    wants = fn_dir("wants-kv", {"main.py": PROBE, "hearth.toml": "[kv]\nenabled = true\n"})
    refused = daemon.cli("deploy", str(wants))
    assert refused.returncode != 0
    assert "apt-get install redis-server" in refused.stdout + refused.stderr
    plain = fn_dir("plain", {"main.py": "def handle(request):\n    return 'fine'\n"})
    daemon.deploy(plain)  # everything else works
    assert daemon.get("/fn/plain/").text == "fine"


def _cmdline(proc) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


FILLER = """
import os, redis

store = redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:1"))  # lazy

def handle(request):
    try:
        for n in range(4):
            store.set(f"block-{n}", b"x" * 1024**2)
    except redis.exceptions.OutOfMemoryError:
        return {"stored": store.dbsize(), "refused": True}
    return {"stored": store.dbsize(), "refused": False}
"""


def test_the_memory_cap_refuses_writes_and_a_new_version_changes_it(fresh_daemon, fn_dir):
    daemon = fresh_daemon.start()
    folder = fn_dir(
        "filler", {"main.py": FILLER, "hearth.toml": '[kv]\nenabled = true\nmemory = "2MiB"\n'}
    )
    daemon.deploy(folder)
    kv = daemon.status("filler")["kv"]
    assert kv["running"] and kv["memory_limit"] == 2 * 1024**2
    assert kv["url"].startswith("unix://") and kv["url"].endswith("/filler/kv.sock")
    capped = daemon.get("/fn/filler/").json()
    assert capped["refused"] and capped["stored"] < 4  # nothing evicted, the write refused
    assert "kv running" in daemon.cli("status", "filler", check=True).stdout
    pid = kv["pid"]
    (folder / "hearth.toml").write_text('[kv]\nenabled = true\nmemory = "64MiB"\n')
    daemon.deploy(folder)
    after = daemon.status("filler")["kv"]
    assert after["memory_limit"] == 64 * 1024**2 and after["pid"] == pid  # live, no restart
    assert daemon.get("/fn/filler/").json() == {"stored": 4, "refused": False}
    (folder / "hearth.toml").write_text("")  # a version without [kv]: the server stops
    daemon.deploy(folder)
    assert daemon.status("filler")["kv"] is None
