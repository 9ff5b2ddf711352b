"""Asynchronous invocations on the real daemon: accepted (202) before they run, replayed
with retries until done or failed, kept with their result, called back, and never lost to
a daemon killed between the 202 and the run."""

from __future__ import annotations

import json
import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.e2e.conftest import Daemon, wait_for

ASYNC = {"X-Hearth-Async": "1"}

# Counts its calls in HEARTH_DATA (the invocation id and attempt it was given); the first
# two get a 500, the third answers with the invocation id it saw.
FLAKY = """
import os
from pathlib import Path
from starlette.responses import Response

def handle(request):
    calls = Path(os.environ["HEARTH_DATA"]) / "calls"
    seen = request.headers.get("x-hearth-invocation-id", "")
    with calls.open("a") as out:
        out.write(f"{seen} {request.headers.get('x-hearth-attempt')}\\n")
    count = len(calls.read_text().splitlines())
    if count < 3:
        return Response(f"failing {count}", status_code=500)
    return Response(seen, media_type="text/plain")
"""

# Fails (500) until a file `fixed` appears in HEARTH_DATA; /missing is a 404.
BROKEN = """
import os
from pathlib import Path
from starlette.responses import Response

def handle(request):
    data = Path(os.environ["HEARTH_DATA"])
    with (data / "calls").open("a") as out:
        out.write(request.url.path + "\\n")
    if request.url.path.endswith("/missing"):
        return Response("no such thing", status_code=404)
    if (data / "fixed").exists():
        return "fixed"
    return Response("still broken", status_code=500)
"""

# Blocks while a file `hold` is in HEARTH_DATA.
HOLDER = """
import asyncio
import os
from pathlib import Path

async def handle(request):
    data = Path(os.environ["HEARTH_DATA"])
    with (data / "calls").open("a") as out:
        out.write(f"{request.headers['x-hearth-invocation-id']} "
                  f"{request.headers['x-hearth-attempt']}\\n")
    while (data / "hold").exists():
        await asyncio.sleep(0.05)
    return "released"
"""

ECHO = """
async def handle(request):
    body = (await request.body()).decode()
    auth = request.headers.get("authorization")
    callback = request.headers.get("x-callback-url")
    return f"{request.method} {request.url.path} {body} auth={auth} callback={callback}"
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """Retries after 50 ms, 100 ms...: the suite does not wait out real backoffs; callbacks
    may reach the test's receiver on 127.0.0.1."""
    data = tmp_path_factory.mktemp("hearth") / "data"
    d = Daemon(data, "--async-backoff", "50ms", "--callback-private").start()
    yield d
    code = d.stop()
    assert code == 0, f"daemon exited with {code}:\n{d.log()}"


def deploy(daemon, fn_dir, name: str, main: str, toml: str = "") -> None:
    folder = fn_dir(name, {"main.py": main, "hearth.toml": f'name = "{name}"\n{toml}'})
    daemon.deploy(folder)


def post_async(daemon, path: str, **kwargs) -> httpx.Response:
    headers = {**ASYNC, **kwargs.pop("headers", {})}
    return daemon.request("POST", path, headers=headers, **kwargs)


def finished(location: str, **kwargs) -> dict:
    """The invocation once done or failed (read by its id alone: no token)."""

    def read() -> dict | None:
        shown = httpx.get(location, timeout=30, **kwargs).json()
        return shown if shown["status"] in ("done", "failed") else None

    return wait_for(read, timeout=60, what=f"{location} to finish")


def lines(daemon, name: str) -> list[str]:
    path = daemon.function_data(name) / "calls"
    return path.read_text().splitlines() if path.exists() else []


def kinds(daemon, name: str) -> list[str]:
    return [e["kind"] for e in daemon.events(name)]


def test_a_flaky_function_succeeds_on_its_third_attempt_exactly_once(daemon, fn_dir):
    deploy(daemon, fn_dir, "flaky", FLAKY)
    accepted = post_async(daemon, "/fn/flaky/?x=1", content=b"payload")
    assert accepted.status_code == 202, accepted.text
    invocation = accepted.headers["x-hearth-invocation-id"]
    location = accepted.headers["location"]
    assert location == f"{daemon.api}/v1/invocations/{invocation}"
    assert accepted.json() == {"id": invocation, "status": "queued", "location": location}
    shown = finished(location)
    assert (shown["status"], shown["attempts"], shown["function"]) == ("done", 3, "flaky")
    assert (shown["method"], shown["url"]) == ("POST", "/fn/flaky/?x=1")
    assert shown["result"]["status"] == 200
    assert shown["result"]["body"] == invocation  # the id it was given, each time the same
    assert not shown["result"]["base64"] and not shown["result"]["truncated"]
    assert lines(daemon, "flaky") == [f"{invocation} 1", f"{invocation} 2", f"{invocation} 3"]
    assert kinds(daemon, "flaky").count("invocation") == 1  # the outcome, not each attempt
    assert "invocation-failed" not in kinds(daemon, "flaky")
    listed = json.loads(daemon.cli("invocations", "flaky", "--json", check=True).stdout)
    assert [(i["id"], i["status"], i["result_status"]) for i in listed] == [
        (invocation, "done", 200)
    ]
    shown_by_cli = daemon.cli("invocations", "show", invocation, check=True).stdout
    assert "done" in shown_by_cli and invocation in shown_by_cli
    assert daemon.status("flaky")["invocations"]["done"] == 1


def test_unknown_invocations_and_who_may_do_what(daemon):
    unknown = httpx.get(f"{daemon.api}/v1/invocations/{'x' * 22}", timeout=30)
    assert unknown.status_code == 404 and "no invocation with id" in unknown.json()["error"]
    # what cannot be an id is no credential: a token is asked for, and it finds nothing
    assert httpx.get(f"{daemon.api}/v1/invocations/short", timeout=30).status_code == 401
    with daemon.api_client() as api:
        assert api.get("/v1/invocations/short").status_code == 404
    # retrying and listing need a token; reading one by its id does not
    retry = httpx.post(f"{daemon.api}/v1/invocations/{'x' * 22}/retry", timeout=30)
    assert retry.status_code == 401
    assert httpx.get(f"{daemon.api}/v1/functions/flaky/invocations", timeout=30).status_code == 401
    nowhere = post_async(daemon, "/fn/no-such-function/")
    assert nowhere.status_code == 404  # the gateway answers before anything is stored


def test_a_dead_letter_keeps_its_last_answer_and_can_be_retried(daemon, fn_dir):
    deploy(daemon, fn_dir, "broken", BROKEN, "[async]\nretries = 1\n")
    accepted = post_async(daemon, "/fn/broken/", content=b"work")
    invocation = accepted.headers["x-hearth-invocation-id"]
    dead = finished(accepted.headers["location"])
    assert (dead["status"], dead["attempts"]) == ("failed", 2)  # the first and one retry
    assert dead["last_error"] == "500 Internal Server Error: still broken"
    assert (dead["result"]["status"], dead["result"]["body"]) == (500, "still broken")
    assert "invocation-failed" in kinds(daemon, "broken")
    failed = daemon.cli("invocations", "broken", "--failed", "--json", check=True)
    assert [i["id"] for i in json.loads(failed.stdout)] == [invocation]

    (daemon.function_data("broken") / "fixed").write_text("yes")
    again = daemon.cli("invocations", "retry", invocation, check=True)
    assert invocation in again.stdout
    shown = finished(accepted.headers["location"])
    assert (shown["status"], shown["attempts"], shown["result"]["body"]) == ("done", 1, "fixed")
    assert len(lines(daemon, "broken")) == 3
    refused = daemon.cli("invocations", "retry", invocation)
    assert refused.returncode == 1 and "is done, not failed" in refused.stderr


def test_a_client_error_fails_at_once_without_retries(daemon, fn_dir):
    deploy(daemon, fn_dir, "broken", BROKEN, "[async]\nretries = 5\n")
    before = len(lines(daemon, "broken"))
    accepted = post_async(daemon, "/fn/broken/missing")
    dead = finished(accepted.headers["location"])
    assert (dead["status"], dead["attempts"]) == ("failed", 1)
    assert dead["last_error"] == "404 Not Found: no such thing"
    assert len(lines(daemon, "broken")) == before + 1


def test_a_private_function_is_invoked_with_its_key_which_it_never_sees(daemon, fn_dir):
    deploy(daemon, fn_dir, "private", ECHO, "[access]\npublic = false\n")
    refused = post_async(daemon, "/fn/private/", content=b"no key")
    assert refused.status_code == 401
    assert json.loads(daemon.cli("invocations", "private", "--json", check=True).stdout) == []
    key = json.loads(daemon.cli("keys", "create", "private", "--json", check=True).stdout)["key"]
    accepted = post_async(
        daemon, "/fn/private/", content=b"with key", headers={"Authorization": f"Bearer {key}"}
    )
    assert accepted.status_code == 202, accepted.text
    # the id reads it even when the function's key comes along (it is not looked at)
    shown = finished(accepted.headers["location"], headers={"Authorization": f"Bearer {key}"})
    assert shown["status"] == "done"
    assert shown["result"]["body"] == "POST /fn/private/ with key auth=None callback=None"
    listed = json.loads(daemon.cli("invocations", "private", "--json", check=True).stdout)
    assert len(listed) == 1


class Hooks(BaseHTTPRequestHandler):
    """A callback receiver: the first POST gets a 500, the next ones a 204."""

    received: list[dict] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.received.append(body)
        self.send_response(500 if len(self.received) == 1 else 204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hooks():
    Hooks.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_callback_receives_the_result_with_retries(daemon, fn_dir, hooks):
    deploy(daemon, fn_dir, "echo", ECHO)
    url = f"http://127.0.0.1:{hooks.server_address[1]}/hook"
    accepted = post_async(daemon, "/fn/echo/cb", content=b"hello", headers={"X-Callback-Url": url})
    assert accepted.status_code == 202
    invocation = accepted.headers["x-hearth-invocation-id"]
    wait_for(lambda: len(Hooks.received) >= 2, timeout=30, what="the callback, twice")
    sent = Hooks.received[-1]
    assert (sent["id"], sent["status"], sent["function"]) == (invocation, "done", "echo")
    # the function never sees the callback header: it is the daemon's
    assert sent["result"]["body"] == "POST /fn/echo/cb hello auth=None callback=None"
    shown = wait_for(
        lambda: (
            (s := httpx.get(accepted.headers["location"]).json())["callback"]["state"]
            == "delivered"
            and s
        ),
        what="the callback delivered",
    )
    assert shown["status"] == "done"
    assert "callback-failed" not in kinds(daemon, "echo")


def test_a_callback_that_cannot_be_delivered_is_an_event_and_nothing_else(daemon, fn_dir):
    deploy(daemon, fn_dir, "echo", ECHO)
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}/gone"
    accepted = post_async(daemon, "/fn/echo/", headers={"X-Callback-Url": closed})
    location = accepted.headers["location"]
    shown = wait_for(
        lambda: (s := httpx.get(location).json())["callback"]["state"] == "failed" and s,
        timeout=60,
        what="the callback given up",
    )
    assert shown["status"] == "done"  # the invocation's own outcome is untouched
    messages = [e["message"] for e in daemon.events("echo") if e["kind"] == "callback-failed"]
    assert any(accepted.headers["x-hearth-invocation-id"] in m for m in messages)


def test_by_default_a_callback_to_the_daemons_own_network_is_refused(fresh_daemon, fn_dir, hooks):
    fresh_daemon.args = ("--async-backoff", "50ms")  # and no --callback-private
    fresh_daemon.start()
    deploy(fresh_daemon, fn_dir, "echo", ECHO)
    url = f"http://127.0.0.1:{hooks.server_address[1]}/hook"
    accepted = post_async(fresh_daemon, "/fn/echo/", headers={"X-Callback-Url": url})
    location = accepted.headers["location"]
    wait_for(
        lambda: httpx.get(location).json()["callback"]["state"] == "failed",
        timeout=60,
        what="the callback refused",
    )
    assert Hooks.received == []  # the receiver on 127.0.0.1 never heard of it
    said = [e["message"] for e in fresh_daemon.events("echo") if e["kind"] == "callback-failed"]
    assert any("loopback or private address" in m for m in said), said


def test_a_callback_url_that_is_not_http_is_refused_and_nothing_is_stored(daemon, fn_dir):
    deploy(daemon, fn_dir, "echo", ECHO)
    before = json.loads(daemon.cli("invocations", "echo", "--json", check=True).stdout)
    refused = post_async(daemon, "/fn/echo/", headers={"X-Callback-Url": "ftp://example.com/"})
    assert refused.status_code == 400
    assert "only http:// and https://" in refused.json()["error"]
    after = json.loads(daemon.cli("invocations", "echo", "--json", check=True).stdout)
    assert after == before


def test_routing_by_host_is_kept(daemon, fn_dir):
    deploy(daemon, fn_dir, "echo", ECHO)
    accepted = post_async(
        daemon, "/by-host", content=b"h", headers={"Host": f"echo.localhost:{daemon.port}"}
    )
    assert accepted.status_code == 202, accepted.text
    shown = finished(accepted.headers["location"])
    assert shown["result"]["body"] == "POST /by-host h auth=None callback=None"


def test_removing_a_function_removes_its_invocations(daemon, fn_dir):
    deploy(daemon, fn_dir, "doomed", ECHO)
    accepted = post_async(daemon, "/fn/doomed/")
    finished(accepted.headers["location"])
    daemon.cli("rm", "doomed", check=True)
    assert httpx.get(accepted.headers["location"]).status_code == 404


def test_an_invocation_survives_a_daemon_killed_mid_attempt(fresh_daemon, fn_dir):
    daemon = fresh_daemon.start()
    deploy(daemon, fn_dir, "holder", HOLDER)
    (daemon.function_data("holder") / "hold").write_text("")
    accepted = post_async(daemon, "/fn/holder/")
    assert accepted.status_code == 202
    invocation = accepted.headers["x-hearth-invocation-id"]
    wait_for(lambda: len(lines(daemon, "holder")) == 1, what="the first attempt to begin")
    daemon.stop(signal.SIGKILL)  # between the 202 and the end of the run

    daemon.start()
    wait_for(lambda: len(lines(daemon, "holder")) == 2, what="the attempt after the restart")
    (daemon.function_data("holder") / "hold").unlink()
    shown = finished(f"{daemon.api}/v1/invocations/{invocation}")
    assert (shown["status"], shown["attempts"]) == ("done", 2)  # the interrupted one counts
    assert shown["result"]["body"] == "released"
    assert lines(daemon, "holder") == [f"{invocation} 1", f"{invocation} 2"]
    assert kinds(daemon, "holder").count("invocation") == 1
