"""A hostile tenant against a victim and the platform, on the real daemon (sandbox auto).

The attacker is an ordinary function whose handler tries one attack per query parameter
and reports what happened; every attack must fail while the victim keeps answering.
"""

from __future__ import annotations

import glob
import json
import os

import pytest

from tests.e2e.conftest import Daemon, write_function

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the full sandbox needs root")

ATTACKER = """
import ctypes, json, os, signal, socket

def attempt(fn):
    try:
        return ["ok", repr(fn())[:200]]
    except Exception as exc:
        return ["refused", type(exc).__name__]

def read(path):
    with open(path, "rb") as fh:
        return fh.read(100)

def write(path):
    with open(path, "w") as fh:
        return fh.write("pwned")

def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    return s.recv(100)

def ptrace(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, pid, 0, 0) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), "ptrace")
    return "attached"

def handle(request):
    q = request.query_params
    data = q["data_dir"]
    victim, daemon = int(q["victim_pid"]), int(q["daemon_pid"])
    return {
        "token": attempt(lambda: read(data + "/token")),
        "database": attempt(lambda: read(data + "/hearth.db")),
        "code_listing": attempt(lambda: os.listdir(data + "/code")),
        "victim_code": attempt(lambda: read(q["victim_code"] + "/main.py")),
        "victim_data": attempt(lambda: os.listdir(q["victim_data"])),
        "logs": attempt(lambda: os.listdir(data + "/logs")),
        "victim_environ": attempt(lambda: read(f"/proc/{victim}/environ")),
        "victim_visible": os.path.exists(f"/proc/{victim}"),
        "daemon_visible": os.path.exists(f"/proc/{daemon}"),
        "kill_victim": attempt(lambda: os.kill(victim, signal.SIGKILL)),
        "kill_daemon": attempt(lambda: os.kill(daemon, signal.SIGKILL)),
        "ptrace_victim": attempt(lambda: ptrace(victim)),
        "victim_socket": attempt(lambda: connect(q["victim_socket"])),
        "write_own_code": attempt(lambda: write(os.getcwd() + "/main.py")),
        "write_envs": attempt(lambda: write(data + "/envs/evil")),
        "write_etc": attempt(lambda: write("/etc/hearth-evil")),
        "canary": os.environ.get("HEARTH_TEST_CANARY"),
        "become_root": attempt(lambda: os.setuid(0)),
        "uid": os.getuid(),
        "open_files": __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE),
        "own_data": attempt(lambda: write(os.environ["HEARTH_DATA"] + "/mine")),
        "own_tmp": attempt(lambda: write(os.environ["TMPDIR"] + "/mine")),
    }
"""

FORGER = """
import gc

FORGED = b"HTTP/1.1 200 OK\\r\\ncontent-length: 6\\r\\n\\r\\nforged"

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    # Find uvicorn's connection object and write raw bytes past the real response.
    protocol = next(o for o in gc.get_objects() if type(o).__name__ == "HttpToolsProtocol"
                    and getattr(o, "transport", None) is not None)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
    protocol.transport.write(FORGED)
"""

VICTIM = """
import os

def handle(request):
    return {"pid": os.getpid(), "secret": os.environ["VICTIM_SECRET"]}
"""


@pytest.fixture(scope="module")
def arena(tmp_path_factory):
    base = tmp_path_factory.mktemp("sandbox")
    os.environ["HEARTH_TEST_CANARY"] = "operator-credential"  # the daemon's environment
    try:
        d = Daemon(base / "data").start()
    finally:
        del os.environ["HEARTH_TEST_CANARY"]
    victim = write_function(
        base,
        "victim",
        {"main.py": VICTIM, "hearth.toml": '[env]\nVICTIM_SECRET = "s3cret"\n'},
    )
    attacker = write_function(base, "attacker", {"main.py": ATTACKER})
    forger = write_function(base, "forger", {"main.py": FORGER})
    d.deploy(victim)
    d.deploy(attacker)
    d.deploy(forger)
    yield d
    assert d.stop() == 0, d.log()


def attack(d: Daemon) -> dict:
    r = d.get("/fn/attacker/", params=attack_params(d))
    assert r.status_code == 200, r.text
    return r.json()


def attack_params(d: Daemon) -> dict:
    victim = d.status("victim")
    (instance,) = victim["instances"]
    bundle = victim["versions"][-1]["bundle"]
    sockets = glob.glob(str(d.data_dir / "run" / "victim" / "*.sock")) + glob.glob(
        "/tmp/hearth-*/victim/*.sock"
    )
    return {
        "data_dir": str(d.data_dir),
        "victim_pid": instance["pid"],
        "daemon_pid": d.proc.pid,
        "victim_code": str(d.data_dir / "code" / bundle),
        "victim_data": str(d.data_dir / "functions" / "victim" / "data"),
        "victim_socket": sockets[0] if sockets else "/nonexistent",
    }


def test_every_attack_is_contained_and_the_victim_keeps_answering(arena):
    out = attack(arena)
    print(json.dumps(out, indent=1))
    for name in (
        "token",
        "database",
        "victim_code",
        "victim_data",
        "logs",
        "victim_environ",
        "kill_victim",
        "kill_daemon",
        "ptrace_victim",
        "victim_socket",
        "write_own_code",
        "write_envs",
        "write_etc",
        "become_root",
    ):
        assert out[name][0] == "refused", (name, out[name])
    # Its view of the code folder holds its own code alone.
    assert arena.status("victim")["versions"][-1]["bundle"] not in out["code_listing"][1]
    assert out["victim_visible"] is False
    assert out["daemon_visible"] is False
    assert out["canary"] is None
    assert out["uid"] >= 200_000
    assert out["open_files"] == [1024, 1024]  # [limits] files
    assert out["own_data"][0] == "ok"
    assert out["own_tmp"][0] == "ok"
    victim = arena.get("/fn/victim/").json()
    assert victim["secret"] == "s3cret"


def test_functions_get_distinct_identities_that_last(arena):
    uid = attack(arena)["uid"]
    assert attack(arena)["uid"] == uid
    with arena.api_client() as api:
        info = api.get("/v1/info").json()
    assert "uid per function" in info["sandbox"]


def test_a_forged_response_never_answers_another_request(arena):
    import httpx

    with httpx.Client(base_url=arena.gateway, timeout=30) as client:
        first = client.get("/fn/forger/")
        second = client.get("/fn/victim/")  # same keep-alive connection, if it survived
    assert b"forged" not in first.content
    assert second.json()["secret"] == "s3cret"
    assert any(e["kind"] == "recycle" for e in arena.events("forger"))


NETWORK_PROBE = """
import socket

def handle(request):
    try:
        socket.create_connection(("127.0.0.1", int(request.query_params["port"])), 5).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__
"""


def test_egress_false_means_no_network(arena, tmp_path):
    port = str(arena.port)  # the gateway itself: always listening
    open_fn = write_function(tmp_path, "netopen", {"main.py": NETWORK_PROBE})
    closed_fn = write_function(
        tmp_path,
        "netclosed",
        {"main.py": NETWORK_PROBE, "hearth.toml": "[network]\negress = false\n"},
    )
    arena.deploy(open_fn)
    arena.deploy(closed_fn)
    assert arena.get("/fn/netopen/", params={"port": port}).text == "connected"
    assert arena.get("/fn/netclosed/", params={"port": port}).text != "connected"


FORK_BOMB = """
import os, signal

def handle(request):
    children = []
    try:
        for _ in range(10_000):
            pid = os.fork()
            if pid == 0:
                signal.pause()
                os._exit(0)
            children.append(pid)
    except OSError as exc:
        refused = type(exc).__name__
    else:
        refused = None
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return {"forked": len(children), "refused": refused}
"""


def test_a_fork_bomb_is_capped_and_the_neighbour_keeps_answering(arena, tmp_path):
    from tests.e2e.conftest import wait_for

    info = arena.api_client()
    with info:
        sandbox = info.get("/v1/info").json()["sandbox"]
    if "pids" not in sandbox:
        pytest.skip(f"no pids cgroup on this host ({sandbox})")
    bomb = write_function(
        tmp_path,
        "bomb",
        {
            "main.py": FORK_BOMB,
            "hearth.toml": "[scale]\nmax = 1\nconcurrency = 4\n[limits]\nprocesses = 8\n",
        },
    )
    arena.deploy(bomb)
    result = arena.get("/fn/bomb/").json()
    assert result["refused"] == "BlockingIOError"  # EAGAIN: the cgroup said no
    assert result["forked"] < 8 + 2 * (4 + 16)
    assert arena.get("/fn/victim/").json()["secret"] == "s3cret"
    wait_for(
        lambda: any(e["kind"] == "limit" for e in arena.events("bomb")),
        what="a limit event",
    )


MEMORY_HOG = """
def handle(request):
    hoard = []
    for _ in range(400):
        hoard.append(bytearray(1024 * 1024))  # 1 MiB, touched
    return str(len(hoard))
"""


def test_a_memory_grab_is_stopped_and_the_neighbour_keeps_answering(arena, tmp_path):
    from tests.e2e.conftest import wait_for

    hog = write_function(
        tmp_path,
        "hog",
        {"main.py": MEMORY_HOG, "hearth.toml": '[scale]\nmax = 1\n[limits]\nmemory = "64MiB"\n'},
    )
    arena.deploy(hog)
    assert arena.get("/fn/hog/").status_code == 502  # 400 MiB > 2 x 64 MiB: the kernel says no
    assert arena.get("/fn/victim/").json()["secret"] == "s3cret"
    wait_for(
        lambda: any(e["kind"] in ("limit", "crash", "killed") for e in arena.events("hog")),
        what="an event naming the memory limit or the kill",
    )
    wait_for(lambda: arena.status("hog")["instances"], what="the hog replaced")


EXHAUSTER = """
import os, time

def fill_disk():
    written = 0
    try:
        with open(os.path.join(os.environ["HEARTH_DATA"], "fill"), "wb") as fh:
            while True:
                fh.write(b"x" * 65536)
                fh.flush()
                written += 65536
    except OSError as exc:
        return {"errno": exc.errno, "written": written}

def open_files():
    held = []
    try:
        while True:
            held.append(open("/dev/null"))
    except OSError as exc:
        return {"errno": exc.errno, "opened": len(held)}
    finally:
        for fh in held:
            fh.close()

def burn(seconds=3.0, workers=4):
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
            os._exit(0)
        children.append(pid)
    return {"burning": children}

def handle(request):
    return {"disk": fill_disk, "files": open_files, "cpu": burn}[request.query_params["what"]]()
"""


def test_disk_files_and_cpu_exhaustion_stay_with_the_exhauster(arena, tmp_path):
    from tests.e2e.conftest import wait_for

    settings = '[scale]\nmax = 1\n[limits]\ndisk = "32MiB"\nfiles = 64\nprocesses = 16\n'
    arena.deploy(
        write_function(tmp_path, "exhauster", {"main.py": EXHAUSTER, "hearth.toml": settings})
    )

    disk = arena.get("/fn/exhauster/", params={"what": "disk"}).json()
    assert disk["errno"] == 28  # ENOSPC: its own disk is full, nobody else's
    assert disk["written"] <= 32 * 1024**2
    wait_for(
        lambda: any("disk is full" in e["message"] for e in arena.events("exhauster")),
        what="a disk-full event",
    )
    # A neighbour's disk, and the platform, still take writes.
    assert arena.get("/fn/attacker/", params=attack_params(arena)).json()["own_data"][0] == "ok"
    assert arena.cli("status", "victim").returncode == 0

    files = arena.get("/fn/exhauster/", params={"what": "files"}).json()
    assert files["errno"] == 24 and files["opened"] < 64  # EMFILE at [limits] files
    assert arena.get("/fn/exhauster/", params={"what": "files"}).status_code == 200  # recovers

    burning = arena.get("/fn/exhauster/", params={"what": "cpu"}).json()["burning"]
    assert len(burning) == 4
    # Four busy processes on this host's cores: the victim still answers every request.
    for _ in range(20):
        assert arena.get("/fn/victim/").json()["secret"] == "s3cret"


ORPHANER = """
import os, time

def handle(request):
    r, w = os.pipe()
    if os.fork() == 0:
        if os.fork() == 0:  # the grandchild: orphaned at once, out of reach of the lifeline
            os.write(w, str(os.getpid()).encode())
            while True:
                time.sleep(1)
        os._exit(0)
    os.wait()
    return {"orphan": int(os.read(r, 32))}
"""


def test_processes_a_function_leaves_behind_end_with_it(arena, tmp_path):
    from tests.e2e.conftest import wait_for

    arena.deploy(write_function(tmp_path, "orphaner", {"main.py": ORPHANER}))
    orphan = arena.get("/fn/orphaner/").json()["orphan"]
    assert os.path.exists(f"/proc/{orphan}")
    arena.cli("rm", "orphaner", check=True)
    wait_for(
        lambda: not os.path.exists(f"/proc/{orphan}") or _zombie(orphan), what="the orphan gone"
    )


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


PROBE_SETUP = """
import json, os
results = {}
for name, path in [("token", TOKEN), ("shadow", "/etc/shadow")]:
    try:
        open(path).read()
        results[name] = "READ"
    except Exception as exc:
        results[name] = type(exc).__name__
try:
    open("/etc/hearth-evil", "w").write("x")
    results["write_etc"] = "WROTE"
except Exception as exc:
    results["write_etc"] = type(exc).__name__
results["uid"] = os.getuid()
raise SystemExit("PROBE " + json.dumps(results))
"""


def test_a_package_build_runs_confined(tmp_path):
    """An sdist's setup.py runs during the build: as the builder uid, it reads and writes
    nothing of the daemon's (it reports what it could do through the build's failure)."""
    import io
    import re
    import tarfile

    data = tmp_path / "data"
    links = tmp_path / "links"
    links.mkdir()
    files = {
        "evilprobe-1.0/setup.py": f"TOKEN = {str(data / 'token')!r}\n" + PROBE_SETUP,
        "evilprobe-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: evilprobe\nVersion: 1.0\n",
        "evilprobe-1.0/pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
        'build-backend = "setuptools.build_meta:__legacy__"\n',
    }
    with tarfile.open(links / "evilprobe-1.0.tar.gz", "w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    os.environ["UV_FIND_LINKS"] = str(links)  # the operator's setting: builds see it
    try:
        d = Daemon(data).start()
    finally:
        del os.environ["UV_FIND_LINKS"]
    try:
        folder = write_function(
            tmp_path,
            "probe",
            {"main.py": "def handle(r):\n    return 'x'\n", "requirements.txt": "evilprobe==1.0\n"},
        )
        result = d.cli("deploy", str(folder), timeout=300)
        found = re.search(r"PROBE (\{.*?\})", result.stderr.replace("\n", " "))
        if found is None and "PROBE" not in result.stderr:
            pytest.skip(f"the sdist could not be built here: {result.stderr[-300:]}")
        assert found is not None, result.stderr
        probe = json.loads(re.sub(r"\s+", " ", found.group(1)))
        assert probe["token"] != "READ"
        assert probe["shadow"] != "READ"
        assert probe["write_etc"] != "WROTE"
        assert probe["uid"] == 200_000
        assert not os.path.exists("/etc/hearth-evil")
    finally:
        assert d.stop() == 0, d.log()
