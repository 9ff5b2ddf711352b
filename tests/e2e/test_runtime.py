"""Instances at work: limits, crashes, scaling, streaming, logs."""

import concurrent.futures
import os
import queue
import signal
import subprocess
import sys
import threading

import httpx

from tests.e2e.conftest import wait_for

SLOW = {
    "main.py": """
        import asyncio
        import os

        async def handle(request):
            await asyncio.sleep(float(request.query_params.get("s", "0")))
            return {"pid": os.getpid()}
    """
}


def ready_pids(daemon, name):
    return {i["pid"] for i in daemon.status(name)["instances"] if i["state"] == "ready"}


def test_timeout_is_504_and_body_limit_413(daemon, fn_dir):
    folder = fn_dir(
        "limited",
        {**SLOW, "hearth.toml": '[limits]\ntimeout = "500ms"\nbody = "1KB"\n'},
    )
    daemon.deploy(folder)
    slow = daemon.get("/fn/limited/?s=3")
    assert slow.status_code == 504
    assert "0.5s" in slow.json()["error"]
    big = daemon.request("POST", "/fn/limited/", content=b"x" * 2000)
    assert big.status_code == 413
    assert daemon.get("/fn/limited/").status_code == 200


def test_killed_instance_gives_502_then_is_replaced(daemon, fn_dir):
    daemon.deploy(fn_dir("fragile", SLOW))
    (pid,) = ready_pids(daemon, "fragile")
    with concurrent.futures.ThreadPoolExecutor() as pool:
        pending = pool.submit(daemon.get, "/fn/fragile/?s=5")
        wait_for(
            lambda: daemon.status("fragile")["instances"][0]["in_flight"] == 1,
            what="request in flight",
        )
        os.kill(pid, signal.SIGKILL)
        assert pending.result().status_code == 502
    new = wait_for(lambda: ready_pids(daemon, "fragile") - {pid}, what="replacement")
    response = daemon.get("/fn/fragile/")
    assert response.status_code == 200
    assert response.json()["pid"] in new
    kinds = [e["kind"] for e in daemon.events("fragile")]
    assert "crash" in kinds


def test_scales_up_under_queueing_and_back_down_when_idle(daemon, fn_dir):
    folder = fn_dir(
        "elastic",
        {**SLOW, "hearth.toml": '[scale]\nmin = 1\nmax = 3\nconcurrency = 1\nidle = "1s"\n'},
    )
    daemon.deploy(folder)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: daemon.get("/fn/elastic/?s=0.6"), range(6)))
    assert all(a.status_code == 200 for a in answers)
    assert len({a.json()["pid"] for a in answers}) >= 2
    wait_for(
        lambda: len(daemon.status("elastic")["instances"]) == 1,
        timeout=20,
        what="idle instances reclaimed",
    )


def test_scale_to_zero_and_cold_start(daemon, fn_dir):
    folder = fn_dir(
        "sleepy",
        {
            "main.py": "def handle(request):\n    return 'awake'\n",
            "hearth.toml": '[scale]\nmin = 0\nidle = "2s"\n',
        },
    )
    daemon.deploy(folder)
    wait_for(lambda: daemon.status("sleepy")["instances"] == [], what="scale to zero")
    response = daemon.get("/fn/sleepy/")
    assert (response.status_code, response.text) == (200, "awake")
    assert len(daemon.status("sleepy")["instances"]) == 1


def test_queue_full_is_503(daemon, fn_dir):
    folder = fn_dir(
        "narrow",
        {**SLOW, "hearth.toml": "[scale]\nmin = 1\nmax = 1\nconcurrency = 1\nqueue = 0\n"},
    )
    daemon.deploy(folder)
    with concurrent.futures.ThreadPoolExecutor() as pool:
        first = pool.submit(daemon.get, "/fn/narrow/?s=2")
        wait_for(
            lambda: daemon.status("narrow")["instances"][0]["in_flight"] == 1, what="slot taken"
        )
        rejected = daemon.get("/fn/narrow/")
        assert rejected.status_code == 503
        assert rejected.headers["retry-after"] == "1"
        assert first.result().status_code == 200


def test_streaming_both_ways(daemon, fn_dir):
    folder = fn_dir(
        "streamer",
        {
            "main.py": """
                import hashlib
                from starlette.applications import Starlette
                from starlette.responses import JSONResponse, StreamingResponse
                from starlette.routing import Route

                async def digest(request):
                    h, n = hashlib.sha256(), 0
                    async for chunk in request.stream():
                        h.update(chunk)
                        n += len(chunk)
                    return JSONResponse({"bytes": n, "sha256": h.hexdigest()})

                async def count(request):
                    async def numbers():
                        for i in range(int(request.query_params["n"])):
                            yield f"{i}\\n".encode()
                    return StreamingResponse(numbers())

                app = Starlette(routes=[Route("/digest", digest, methods=["POST"]),
                                        Route("/count", count)])
            """,
            "hearth.toml": '[limits]\nbody = "64MB"\n',
        },
    )
    daemon.deploy(folder)
    import hashlib

    payload = os.urandom(20 * 1024 * 1024)

    def chunks():
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    chunked = daemon.request("POST", "/fn/streamer/digest", content=chunks())
    assert chunked.json() == {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    fixed = daemon.request("POST", "/fn/streamer/digest", content=payload)
    assert fixed.json()["bytes"] == len(payload)
    with httpx.stream("GET", daemon.gateway + "/fn/streamer/count?n=50000", timeout=60) as r:
        assert r.headers["transfer-encoding"] == "chunked"
        lines = list(r.iter_lines())
    assert lines[0] == "0" and lines[-1] == "49999" and len(lines) == 50000


def test_logs_capture_and_follow(daemon, fn_dir):
    folder = fn_dir(
        "chatty",
        {
            "main.py": """
            import sys

            def handle(request):
                print("visited", request.query_params.get("tag"))
                print("to stderr", file=sys.stderr)
                return "ok"
        """
        },
    )
    daemon.deploy(folder)
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hearth.cli.main",
            "logs",
            "chatty",
            "-f",
            "--tail",
            "0",
            "--data-dir",
            str(daemon.data_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in follower.stdout], daemon=True).start()
    try:
        # The follower needs a moment to connect: call until a line shows up (bounded).
        for _ in range(50):
            daemon.get("/fn/chatty/?tag=first")
            try:
                line = lines.get(timeout=0.3)
                break
            except queue.Empty:
                continue
        else:
            raise AssertionError("hearth logs -f printed nothing")
        assert "visited first" in line
        assert "chatty@" in line  # the instance id
    finally:
        follower.terminate()
        follower.wait(10)
        follower.stdout.close()
    history = daemon.cli("logs", "chatty", check=True).stdout
    assert "visited first" in history
    assert "to stderr" in history


def test_daemon_restart_brings_functions_back(fresh_daemon, fn_dir):
    daemon = fresh_daemon.start()
    folder = fn_dir(
        "durable",
        {
            "main.py": "def handle(request):\n    return 'still here'\n",
            "hearth.toml": "[scale]\nmin = 2\n",
        },
    )
    version = daemon.deploy(folder)["version"]
    version = daemon.deploy(folder)["version"]  # a second version; the newest stays active
    assert daemon.stop() == 0
    daemon.start()
    assert daemon.get("/fn/durable/").text == "still here"
    status = daemon.status("durable")
    assert status["version"] == version
    assert len(status["instances"]) == 2
