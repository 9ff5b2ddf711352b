"""Hearth's benchmark suite: every scenario side by side in one run, as ratios.

    ./scripts/bench            # full run; rewrites bench/results/latest.json and BENCHMARKS.md
    ./scripts/bench --quick    # short smoke run (well under 90 s)

Needs wrk (apt-get install -y wrk); uses nginx when installed and PostgreSQL from
HEARTH_BENCH_PG / HEARTH_TEST_PG (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load
import report
import wrk
from servers import ROOT, Cgi, Hearth, Nginx, Server, Uvicorn

EXAMPLES = ROOT / "examples"
APPS = ROOT / "bench" / "apps"
CONNECTIONS = 32
PROCESS_CONNECTIONS = 2
BURNERS = 4  # busy processes of the noisy neighbour, on a 2-core machine
PACE = 100  # requests per second of the light load whose latency is watched beside them
BURST = 500  # clients at once on a function with no instance
HEAVY_IMPORTS = "import starlette.applications, starlette.requests, psycopg, psycopg_pool"


def pg_dsn() -> str | None:
    dsn = os.environ.get("HEARTH_BENCH_PG") or os.environ.get("HEARTH_TEST_PG")
    dsn = dsn or "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        import psycopg

        psycopg.connect(dsn, connect_timeout=3).close()
    except Exception as exc:  # any failure means: no database for this run
        print(f"bench: PostgreSQL not reachable ({exc}); pg scenarios skipped", file=sys.stderr)
        return None
    return dsn


def with_env(src: Path, dest: Path, toml: str) -> Path:
    shutil.copytree(src, dest, dirs_exist_ok=True)
    (dest / "hearth.toml").write_text(toml)
    return dest


def connections(system: str) -> int:
    # A fork per request cannot use more than a core each; more connections only queue
    # forks that go on burning CPU after wrk stops, and would slow the next system down.
    return PROCESS_CONNECTIONS if system == "process-per-request" else CONNECTIONS


def throughput(
    scenario: str,
    systems: dict[str, str],
    rounds: int,
    seconds: float,
    warmup: float,
    clients: int | None = None,
) -> list[dict]:
    """wrk against each system, alternating systems every round so drift hits all alike."""
    runs: dict[str, list[wrk.Run]] = {name: [] for name in systems}

    def conns(name: str) -> int:
        return clients or connections(name)

    for name, url in systems.items():
        wrk.run(url, warmup, conns(name), closes=name == "process-per-request")
    for _ in range(rounds):
        for name, url in systems.items():
            closes = name == "process-per-request"
            runs[name].append(wrk.run(url, seconds, conns(name), closes=closes))
            time.sleep(0.5)  # let stragglers finish before the next system starts
    return [
        {
            "scenario": scenario,
            "system": name,
            "connections": conns(name),
            "rps": round(statistics.median(r.rps for r in rs), 1),
            "p50_ms": round(statistics.median(r.p50_ms for r in rs), 3),
            "p99_ms": round(statistics.median(r.p99_ms for r in rs), 3),
            "errors": sum(r.errors for r in rs),
            "requests": sum(r.requests for r in rs),
        }
        for name, rs in runs.items()
    ]


def beside_a_burner(daemon: Hearth, url: str, seconds: float) -> dict[str, dict[str, float]]:
    """`hello` under a light, paced load (PACE requests per second, one at a time), alone
    and while its neighbour function keeps BURNERS processes busy: the latency a function
    keeps when another burns the CPU."""
    alone = paced(url, seconds)
    spin = seconds + 2.0
    burn = httpx.get(
        f"{daemon.url}/fn/spinner/", params={"seconds": spin, "workers": BURNERS}, timeout=30
    )
    burn.raise_for_status()
    time.sleep(0.5)
    beside = paced(url, seconds)
    time.sleep(2.0)  # let the burners end
    return {"alone": alone, "beside": beside}


def paced(url: str, seconds: float) -> dict[str, float]:
    """Requests at PACE per second on one keep-alive connection: p50 and p99 in ms."""
    times = []
    with httpx.Client(timeout=30) as client:
        client.get(url)
        start = time.perf_counter()
        for n in range(int(seconds * PACE)):
            delay = start + n / PACE - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            began = time.perf_counter()
            client.get(url).raise_for_status()
            times.append((time.perf_counter() - began) * 1000)
    return {"p50": round(percentile(times, 50), 2), "p99": round(percentile(times, 99), 2)}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def cold_starts(hearth: Hearth, name: str, tries: int) -> tuple[list[float], int]:
    """Request a function with no instance; time until its response. Back to zero between."""
    times, errors = [], 0
    for _ in range(tries):
        wait(lambda: hearth.status(name)["instances"] == [], 30, f"{name} back to zero")
        with httpx.Client() as fresh:  # a new connection: nothing warm on the client side either
            began = time.perf_counter()
            response = fresh.get(f"{hearth.url}/fn/{name}/", timeout=30)
            times.append((time.perf_counter() - began) * 1000)
        errors += response.status_code != 200
    return times, errors


def fresh_interpreter(tries: int) -> list[float]:
    times = []
    for _ in range(tries):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", HEAVY_IMPORTS], check=True)
        times.append((time.perf_counter() - began) * 1000)
    return times


def deploys(hearth: Hearth, workdir: Path, tries: int) -> list[float]:
    """`hearth deploy` of a changed hello (environment cached) until the new version answers."""
    folder = workdir / "deploy-hello"
    times = []
    for n in range(tries + 1):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "main.py").write_text(f"def handle(request):\n    return 'v{n}'\n")
        began = time.perf_counter()
        hearth.cli("deploy", str(folder), "--json")
        while httpx.get(f"{hearth.url}/fn/deploy-hello/").text != f"v{n}":
            time.sleep(0.001)
        if n:  # the first deploy starts the zygote; it is not a re-deploy
            times.append((time.perf_counter() - began) * 1000)
    return times


def bursts_from_zero(hearth: Hearth, workdir: Path, tries: int) -> dict:
    """BURST clients at once on `hello` with no instance (min = 0): the median try, and
    the errors of all tries."""
    hearth.deploy(
        with_env(
            EXAMPLES / "hello",
            workdir / "burst",
            'name = "burst"\n[scale]\nmin = 0\nmax = 20\nidle = "1s"\n',
        )
    )
    runs = []
    for _ in range(tries):
        wait(lambda: hearth.status("burst")["instances"] == [], 60, "burst back to zero")
        runs.append(load.burst(f"{hearth.url}/fn/burst/", BURST))
    middle = sorted(runs, key=lambda r: r["all_served_s"])[len(runs) // 2]
    return {**middle, "tries": tries, "errors": sum(r["errors"] for r in runs)}


def step_load(hearth: Hearth, workdir: Path, quick: bool) -> dict:
    """`sleepy` (200 ms a request, 8 at once per instance) under 1 -> 64 -> 256 -> 0
    clients: instances and latency each second, and the autoscaler's events."""
    folder = APPS / "sleepy"
    phases = [(1, 10.0), (64, 15.0), (256, 20.0), (0, 25.0)]
    if quick:  # shorter windows, so that the way down shows in a short run
        toml = (
            '[scale]\nmin = 1\nmax = 40\nconcurrency = 8\nwindow = "4s"\n'
            'panic_window = "2s"\nidle = "3s"\n'
        )
        folder = with_env(folder, workdir / "sleepy", toml)
        phases = [(1, 2.0), (64, 3.0), (256, 3.0), (0, 7.0)]
    hearth.deploy(folder)
    url = f"{hearth.url}/fn/sleepy/"
    httpx.get(url, timeout=30).raise_for_status()
    began = time.time()
    steps = load.Steps(url, phases, lambda: len(hearth.status("sleepy")["instances"]))
    timeline = steps.run()
    events = [
        {"t": round(e["time"] - began, 1), "message": e["message"]}
        for e in hearth.api.get("/v1/functions/sleepy/events", params={"limit": 500}).json()
        if e["kind"] == "scale" and e["time"] >= began
    ]
    return {
        "phases": phases,
        "timeline": timeline,
        "phases_summary": load.summary(timeline),
        "events": events,
    }


def backups(hearth: Hearth, work: Path, url: str, quick: bool, seconds: float) -> dict:
    """What `hearth backup` costs with the examples holding data: its time and size, and
    the p99 of a loaded function while backups run back to back, beside the same load
    without them."""
    hearth.deploy(EXAMPLES / "visits")
    hearth.deploy(EXAMPLES / "django-notes")
    kv = shutil.which("redis-server") is not None
    if kv:
        hearth.deploy(EXAMPLES / "kv-counter")
    notes, hits = (200, 200) if quick else (2000, 2000)
    with httpx.Client(base_url=hearth.url, timeout=30) as client:
        for n in range(notes):
            client.post("/fn/django-notes/", content=f"note {n}").raise_for_status()
        for _ in range(hits if kv else 0):
            client.post("/fn/kv-counter/hit").raise_for_status()
    blob = work / "blob.bin"  # a file the size of a small upload folder, not compressible
    blob.write_bytes(os.urandom((4 if quick else 32) * 1024**2))
    hearth.cli("data", "visits", "put", "uploads/blob.bin", str(blob))
    times, size = [], 0
    for n in range(2 if quick else 5):
        began = time.perf_counter()
        hearth.cli("backup", str(work / f"backup-{n}.tar.gz"))
        times.append(time.perf_counter() - began)
        size = (work / f"backup-{n}.tar.gz").stat().st_size
        (work / f"backup-{n}.tar.gz").unlink()
    wrk.run(url, 1.0, CONNECTIONS)
    without = wrk.run(url, seconds, CONNECTIONS)
    stop = threading.Event()
    taken = 0

    def back_to_back() -> None:
        nonlocal taken
        while not stop.is_set():
            hearth.cli("backup", str(work / "during.tar.gz"))
            taken += 1

    runner = threading.Thread(target=back_to_back)
    runner.start()
    time.sleep(0.2)
    during = wrk.run(url, seconds, CONNECTIONS)
    stop.set()
    runner.join()
    return {
        "functions": "hello, asgi-hello, visits (+32 MiB file), django-notes, kv-counter",
        "notes": notes,
        "kv_hits": hits if kv else 0,
        "seconds_p50": round(statistics.median(times), 3),
        "seconds_max": round(max(times), 3),
        "size_bytes": size,
        "backups_during_load": taken,
        "without": {"rps": without.rps, "p99_ms": without.p99_ms, "errors": without.errors},
        "during": {"rps": during.rps, "p99_ms": during.p99_ms, "errors": during.errors},
    }


def websocket_echo(hearth: Hearth, rounds: int, seconds: float) -> dict[str, dict[str, float]]:
    """WebSocket round trips per second (`bench/ws.py`, a client process of its own): the
    echo app under uvicorn alone and through Hearth's gateway, alternating rounds."""
    hearth.deploy(APPS / "ws-echo")
    direct = Uvicorn(APPS / "ws-echo", "main:app", {})
    urls = {
        "direct": direct.url.replace("http://", "ws://") + "/",
        "hearth": hearth.url.replace("http://", "ws://") + "/fn/ws-echo/",
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
    try:
        for _ in range(rounds):
            for name, url in urls.items():
                out = subprocess.run(
                    [sys.executable, str(ROOT / "bench" / "ws.py"), url, "16", str(seconds)],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=seconds + 60,
                )
                runs[name].append(json.loads(out.stdout))
    finally:
        direct.stop()
    return {
        name: {
            key: round(statistics.median(r[key] for r in rs), 3)
            for key in ("round_trips_per_s", "p50_ms", "p99_ms")
        }
        for name, rs in runs.items()
    }


def async_invocations(hearth: Hearth, seconds: float) -> dict:
    """`hello` invoked asynchronously (X-Hearth-Async: 1) by CONNECTIONS clients for
    `seconds`: invocations accepted (stored, 202) per second; then the worker's pace,
    completed per second from the first accept until the last one finished."""

    def counts() -> dict[str, int]:
        return dict(hearth.status("hello")["invocations"])

    before = counts()
    began = time.monotonic()
    accepted = load.accepting(f"{hearth.url}/fn/hello/", CONNECTIONS, seconds)
    target = before["done"] + before["failed"] + accepted["accepted"]
    deadline = time.monotonic() + 600
    while (now := counts())["done"] + now["failed"] < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"async invocations did not finish: {now}")
        time.sleep(0.1)
    took = time.monotonic() - began
    return {
        **accepted,
        "completed": accepted["accepted"],
        "completed_seconds": round(took, 2),
        "completed_per_s": round(accepted["accepted"] / took, 1),
        "failed": now["failed"] - before["failed"],
    }


def private_mb(pid: int) -> float:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value, *_ = line.split()
        fields[key.rstrip(":")] = int(value)
    return (fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)) / 1024


def memory(hearth: Hearth, count: int) -> dict:
    hello_pid = hearth.status("hello")["instances"][0]["pid"]
    pids = []
    for n in range(count):
        result = hearth.deploy(EXAMPLES / "hello", name=f"mem-{n}")
        pids.append(result["instances"][0]["pid"])
    for n in range(count):
        httpx.get(f"{hearth.url}/fn/mem-{n}/")  # warm: each has served a request
    zygotes = {z["key"]: z["pid"] for z in hearth.info()["zygotes"]}
    version_zygotes = [zygotes[k] for k in zygotes if k.startswith("mem-")]
    total = sum(private_mb(pid) for pid in pids)
    zygotes_total = sum(private_mb(pid) for pid in version_zygotes)
    return {
        "instance_private": round(private_mb(hello_pid), 2),
        "zygote_private": round(private_mb(zygotes["root"]), 2),
        "version_zygote_private": round(zygotes_total / max(1, len(version_zygotes)), 2),
        "hundred_instances_private": round(total * 100 / count, 1),
        "measured_instances": count,
    }


def many(hearth: Hearth, functions: int, each: int) -> dict:
    """The `mem-N` functions (deployed by `memory`) scaled live to `each` warm instances:
    the daemon's CPU while they idle, its open files, private memory per instance."""
    for n in range(functions):
        change = {"min": each, "max": max(each, 8)}
        hearth.api.patch(f"/v1/functions/mem-{n}/scale", json=change).raise_for_status()
    wanted = functions * each

    def running() -> int:
        listing = hearth.api.get("/v1/functions").json()
        return sum(len(f["instances"]) for f in listing if f["name"].startswith("mem-"))

    wait(lambda: running() >= wanted, timeout=900, what=f"{wanted} warm instances")
    time.sleep(5)  # the starts settle
    pid = hearth.proc.pid
    cpu = daemon_cpu(pid, 10.0)
    listing = hearth.api.get("/v1/functions").json()
    pids = [i["pid"] for f in listing if f["name"].startswith("mem-") for i in f["instances"]]
    sample = pids[:: max(1, len(pids) // 50)]
    return {
        "instances": len(pids),
        "daemon_cpu_percent": round(cpu, 2),
        "daemon_open_files": len(os.listdir(f"/proc/{pid}/fd")),
        "instance_private_mb": round(statistics.mean(private_mb(p) for p in sample), 2),
    }


def daemon_cpu(pid: int, seconds: float) -> float:
    """Percent of one core the process used over `seconds`."""

    def ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    before = ticks()
    time.sleep(seconds)
    return 100.0 * (ticks() - before) / os.sysconf("SC_CLK_TCK") / seconds


def wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def cgi_scripts(dsn: str | None) -> dict[str, str]:
    hello = f"""
        import os, sys
        sys.path.insert(0, {str(EXAMPLES / "hello")!r})
        from starlette.requests import Request
        import main
        scope = {{"type": "http", "method": "GET", "path": "/", "headers": [],
                  "query_string": os.environ.get("QUERY_STRING", "").encode()}}
        sys.stdout.write("Content-Type: text/plain\\r\\n\\r\\n" + main.handle(Request(scope)))
    """
    scripts = {"hello.py": hello}
    if dsn:
        scripts["pg.py"] = f"""
            import sys
            import psycopg
            with psycopg.connect({dsn!r}) as conn:
                (value,) = conn.execute("select 1").fetchone()
            sys.stdout.write("Content-Type: text/plain\\r\\n\\r\\n" + str(value))
        """
    return scripts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--duration", type=float, help="seconds per wrk run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite BENCHMARKS.md")
    args = parser.parse_args()
    wrk.require()
    quick = args.quick
    seconds = args.duration or (2.0 if quick else 10.0)
    rounds, warmup = (1, 2.0) if quick else (3, 3.0)
    tries = 5 if quick else 30
    dsn = pg_dsn()
    began = time.monotonic()
    results: list[dict] = []
    servers: list[Server] = []
    work = Path(tempfile.mkdtemp(prefix="hearth-bench-"))
    try:
        hearth = Hearth(work / "data")
        servers.append(hearth)
        hearth.deploy(EXAMPLES / "hello")
        # The same daemon without its sandbox: what the isolation costs, side by side.
        bare = Hearth(work / "data-sandbox-off", "--sandbox", "off")
        servers.append(bare)
        bare.deploy(EXAMPLES / "hello")
        direct = Uvicorn(EXAMPLES / "hello", "hearth.runtime.handler:make_app", {}, factory=True)
        servers.append(direct)
        cgi = Cgi(work / "cgi", cgi_scripts(dsn))
        servers.append(cgi)
        hello = {
            "direct": direct.url,
            "hearth": f"{hearth.url}/fn/hello/",
            "hearth-sandbox-off": f"{bare.url}/fn/hello/",
        }
        if Nginx.available():
            nginx = Nginx(direct.port, work / "nginx")
            servers.append(nginx)
            hello["nginx"] = nginx.url
        hello["process-per-request"] = cgi.base + "hello.py"
        print("bench: hello", flush=True)
        results += throughput("hello", hello, rounds, seconds, warmup)
        print("bench: asgi-hello", flush=True)
        asgi_direct = Uvicorn(APPS / "asgi-hello", "main:app", {})
        servers.append(asgi_direct)
        hearth.deploy(APPS / "asgi-hello")
        # The same daemon without its access log, and without counting either: what each
        # costs (side by side, on a load the proxy is the limit of).
        unlogged = Hearth(work / "data-no-access-log", "--no-access-log")
        uncounted = Hearth(work / "data-metrics-off", "--no-access-log", "--no-metrics")
        servers += [unlogged, uncounted]
        for daemon in (unlogged, uncounted):
            daemon.deploy(APPS / "asgi-hello")
        asgi = {
            "direct": asgi_direct.url,
            "hearth": f"{hearth.url}/fn/asgi-hello/",
            "hearth-no-access-log": f"{unlogged.url}/fn/asgi-hello/",
            "hearth-metrics-off": f"{uncounted.url}/fn/asgi-hello/",
        }
        if Nginx.available():
            asgi_nginx = Nginx(asgi_direct.port, work / "nginx-asgi")
            servers.append(asgi_nginx)
            asgi["nginx"] = asgi_nginx.url
        results += throughput("asgi-hello", asgi, rounds, seconds, warmup)
        for daemon in (unlogged, uncounted):
            daemon.stop()
            servers.remove(daemon)
        print("bench: hello beside a CPU-burning neighbour", flush=True)
        neighbour: dict[str, dict[str, dict[str, float]]] = {}
        for daemon, system in ((hearth, "hearth"), (bare, "hearth-sandbox-off")):
            daemon.deploy(APPS / "spinner")
            neighbour[system] = beside_a_burner(daemon, hello[system], seconds)

        cold: dict[str, dict[str, float]] = {}
        if dsn:
            env = {"DATABASE_URL": dsn}
            pooled = with_env(
                APPS / "pg-pooled",
                work / "pg-pooled",
                f'name = "pg-pooled"\n[env]\nDATABASE_URL = "{dsn}"\n',
            )
            connect = with_env(
                APPS / "pg-connect",
                work / "pg-connect",
                f'name = "pg-connect"\n[env]\nDATABASE_URL = "{dsn}"\n',
            )
            hearth.deploy(pooled)
            hearth.deploy(connect)
            pg_direct = Uvicorn(APPS / "pg-pooled", "main:app", env)
            servers.append(pg_direct)
            print("bench: pg", flush=True)
            results += throughput(
                "pg",
                {
                    "direct": pg_direct.url,
                    "hearth-pooled": f"{hearth.url}/fn/pg-pooled/",
                    "hearth-connect-per-request": f"{hearth.url}/fn/pg-connect/",
                    "process-per-request": cgi.base + "pg.py",
                },
                rounds,
                seconds,
                warmup,
            )
            heavy = with_env(
                APPS / "heavy",
                work / "heavy",
                'name = "cold-heavy"\n[scale]\nmin = 0\nidle = "10ms"\n'
                f'[env]\nDATABASE_URL = "{dsn}"\n',
            )
            hearth.deploy(heavy)

        print("bench: cold start", flush=True)
        hearth.deploy(
            with_env(
                EXAMPLES / "hello",
                work / "cold-hello",
                'name = "cold-hello"\n[scale]\nmin = 0\nidle = "10ms"\n',
            )
        )
        bare.deploy(
            with_env(
                EXAMPLES / "hello",
                work / "cold-hello-off",
                'name = "cold-hello"\n[scale]\nmin = 0\nidle = "10ms"\n',
            )
        )
        cold_errors = 0
        subjects = (
            (hearth, "cold-hello", "hello"),
            (bare, "cold-hello", "hello-sandbox-off"),
            (hearth, "cold-heavy", "heavy"),
        )
        for daemon, name, key in subjects:
            if key == "heavy" and not dsn:
                continue
            times, errs = cold_starts(daemon, name, tries)
            cold_errors += errs
            cold[key] = {
                "p50": round(percentile(times, 50), 2),
                "p99": round(percentile(times, 99), 2),
            }
        fresh = fresh_interpreter(tries)
        cold["fresh_interpreter"] = {
            "p50": round(percentile(fresh, 50), 2),
            "p99": round(percentile(fresh, 99), 2),
        }

        print("bench: burst from zero", flush=True)
        bursts = bursts_from_zero(hearth, work, 1 if quick else 3)
        print("bench: step load", flush=True)
        steps = step_load(hearth, work, quick)

        print("bench: websocket echo", flush=True)
        ws = websocket_echo(hearth, rounds, seconds)
        print("bench: backup", flush=True)
        backup = backups(hearth, work, f"{hearth.url}/fn/asgi-hello/", quick, seconds)
        print("bench: async invocations", flush=True)
        deferred = async_invocations(hearth, seconds)
        print("bench: deploy", flush=True)
        deploy_times = deploys(hearth, work, 3 if quick else 10)
        print("bench: memory", flush=True)
        functions = 10 if quick else 100
        mem = memory(hearth, functions)
        print("bench: many warm instances", flush=True)
        scale = {
            str(functions): many(hearth, functions, 1),
            str(functions * (2 if quick else 10)): many(hearth, functions, 2 if quick else 10),
        }
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    by = {(r["scenario"], r["system"]): r["rps"] for r in results}

    def ratio(a: tuple[str, str], b: tuple[str, str]) -> float | None:
        return round(by[a] / by[b], 3) if a in by and b in by and by[b] else None

    ratios = {
        "hello.hearth/direct": ratio(("hello", "hearth"), ("hello", "direct")),
        "hello.nginx/direct": ratio(("hello", "nginx"), ("hello", "direct")),
        "hello.hearth/hearth-sandbox-off": ratio(
            ("hello", "hearth"), ("hello", "hearth-sandbox-off")
        ),
        **{
            f"p99 hello beside a burner/alone.{system}": round(
                v["beside"]["p99"] / v["alone"]["p99"], 3
            )
            for system, v in neighbour.items()
        },
        "asgi-hello.hearth/direct": ratio(("asgi-hello", "hearth"), ("asgi-hello", "direct")),
        "asgi-hello.nginx/direct": ratio(("asgi-hello", "nginx"), ("asgi-hello", "direct")),
        "asgi-hello.hearth-no-access-log/hearth-metrics-off": ratio(
            ("asgi-hello", "hearth-no-access-log"), ("asgi-hello", "hearth-metrics-off")
        ),
        "asgi-hello.hearth/hearth-no-access-log": ratio(
            ("asgi-hello", "hearth"), ("asgi-hello", "hearth-no-access-log")
        ),
        "hello.process-per-request/direct": ratio(
            ("hello", "process-per-request"), ("hello", "direct")
        ),
        "pg.hearth-pooled/direct": ratio(("pg", "hearth-pooled"), ("pg", "direct")),
        "pg.hearth-pooled/hearth-connect-per-request": ratio(
            ("pg", "hearth-pooled"), ("pg", "hearth-connect-per-request")
        ),
        "pg.hearth-pooled/process-per-request": ratio(
            ("pg", "hearth-pooled"), ("pg", "process-per-request")
        ),
        "ws-echo.hearth/direct": round(
            ws["hearth"]["round_trips_per_s"] / ws["direct"]["round_trips_per_s"], 3
        )
        if ws["direct"]["round_trips_per_s"]
        else None,
        "p99 asgi-hello during backups/without": round(
            backup["during"]["p99_ms"] / backup["without"]["p99_ms"], 3
        )
        if backup["without"]["p99_ms"]
        else None,
    }
    data = {
        "machine": report.machine(),
        "mode": "quick" if quick else "full",
        "command": "./scripts/bench" + (" --quick" if quick else ""),
        "settings": {
            "seconds": seconds,
            "rounds": rounds,
            "warmup": warmup,
            "connections": CONNECTIONS,
            "process_connections": PROCESS_CONNECTIONS,
            "cold_start_tries": tries,
        },
        "elapsed_s": round(time.monotonic() - began, 1),
        "results": results,
        "ratios": {k: v for k, v in ratios.items() if v is not None},
        "cold_start_ms": cold,
        "cold_start_errors": cold_errors,
        "deploy_ms": {
            "p50": round(percentile(deploy_times, 50), 1),
            "max": round(max(deploy_times), 1),
        },
        "memory_mb": mem,
        "many": scale,
        "neighbour_ms": neighbour,
        "burst": bursts,
        "steps": steps,
        "backup": backup,
        "websocket": ws,
        "async": deferred,
        "python": platform.python_version(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(data, indent=2) + "\n")
    if not args.no_report:
        report.write(data, args.out, ROOT / "BENCHMARKS.md")
    print(report.summary(data))


if __name__ == "__main__":
    main()
