"""No lock-in: every example also runs under plain uvicorn or gunicorn, without the daemon."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import EXAMPLES

BIN = Path(sys.executable).parent
PG = os.environ.get("HEARTH_TEST_PG")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(argv: list[str], cwd: Path, port: int, env: dict | None = None):
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode()) from None
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"{argv} did not start")


def stop(proc):
    proc.terminate()
    proc.wait(10)
    proc.stderr.close()


def uvicorn(app: str, port: int, *extra: str) -> list[str]:
    return [str(BIN / "uvicorn"), app, "--port", str(port), "--log-level", "warning", *extra]


def test_visits_under_uvicorn():
    port = free_port()
    proc = serve(uvicorn("main:app", port), EXAMPLES / "visits", port)
    try:
        counts = [httpx.get(f"http://127.0.0.1:{port}/").json()["visits"] for _ in range(3)]
        assert counts[-1] == counts[0] + 2
    finally:
        stop(proc)


def test_hello_handler_under_uvicorn():
    port = free_port()
    proc = serve(
        uvicorn("hearth.runtime.handler:make_app", port, "--factory"), EXAMPLES / "hello", port
    )
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/?name=uv").text == "hello, uv\n"
    finally:
        stop(proc)


def test_flask_notes_under_gunicorn():
    port = free_port()
    argv = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1", "main:app"]
    proc = serve(argv, EXAMPLES / "flask-notes", port)
    try:
        created = httpx.post(f"http://127.0.0.1:{port}/", content=b"portable")
        assert created.status_code == 201
        assert "portable" in httpx.get(f"http://127.0.0.1:{port}/").json()["notes"]
    finally:
        stop(proc)


@pytest.mark.skipif(not PG, reason="set HEARTH_TEST_PG to a PostgreSQL DSN to run this")
def test_pg_visits_under_uvicorn():
    port = free_port()
    proc = serve(uvicorn("main:app", port), EXAMPLES / "pg-visits", port, {"DATABASE_URL": PG})
    try:
        first = httpx.get(f"http://127.0.0.1:{port}/").json()["visits"]
        assert httpx.get(f"http://127.0.0.1:{port}/").json()["visits"] == first + 1
    finally:
        stop(proc)


def test_kv_counter_under_uvicorn_with_a_local_redis():
    redis = pytest.importorskip("redis")
    url = "redis://127.0.0.1:6379/15"
    try:
        redis.from_url(url).flushdb()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    port = free_port()
    proc = serve(uvicorn("main:app", port), EXAMPLES / "kv-counter", port, {"REDIS_URL": url})
    try:
        hits = [httpx.post(f"http://127.0.0.1:{port}/hit").json()["hits"] for _ in range(3)]
        assert hits == [1, 2, 3]
    finally:
        stop(proc)
        redis.from_url(url).flushdb()


def test_chat_under_uvicorn():
    from websockets.sync.client import connect

    port = free_port()
    proc = serve(uvicorn("main:app", port), EXAMPLES / "chat", port)
    try:
        with (
            connect(f"ws://127.0.0.1:{port}/ws") as one,
            connect(f"ws://127.0.0.1:{port}/ws") as two,
        ):
            one.send("hi")
            assert two.recv(timeout=10) == "hi"
    finally:
        stop(proc)


def test_django_notes_under_gunicorn(tmp_path):
    pytest.importorskip("django")
    project = tmp_path / "django-notes"
    shutil.copytree(EXAMPLES / "django-notes", project)
    port = free_port()
    argv = [str(BIN / "gunicorn"), "notes.wsgi:application", "-b", f"127.0.0.1:{port}"]
    proc = serve(argv, project, port)  # no HEARTH_DATA: the database sits beside manage.py
    try:
        httpx.post(f"http://127.0.0.1:{port}/", content=b"portable")
        assert httpx.get(f"http://127.0.0.1:{port}/").json() == {"notes": ["portable"]}
        assert (project / "db.sqlite3").exists()
    finally:
        stop(proc)
