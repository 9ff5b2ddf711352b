"""Beyond one request, one response: WebSockets through the gateway (both routing
styles, broadcast, drained by a deploy), server-sent events as they are produced, and
chunked request bodies for every function format."""

from __future__ import annotations

import shutil
import socket

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.e2e.conftest import EXAMPLES, wait_for

STREAMER = """
import asyncio

from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

release = asyncio.Event()
closed = []


async def events(request):
    async def produce():
        try:
            yield "data: first\\n\\n"
            await release.wait()  # the rest only once the client said it saw the first
            yield "data: second\\n\\n"
            if request.query_params.get("forever"):
                while True:
                    await asyncio.sleep(0.05)
                    yield "data: more\\n\\n"
        finally:
            closed.append(1)

    return StreamingResponse(produce(), media_type="text/event-stream")


async def go_on(request):
    release.set()
    return JSONResponse({"released": True})


async def gone(request):
    return JSONResponse({"closed": len(closed)})


app = Starlette(routes=[Route("/events", events), Route("/release", go_on), Route("/gone", gone)])
"""

FLASK_BODY = """
from flask import Flask, request

app = Flask(__name__)


@app.post("/")
def size():
    return {"bytes": len(request.get_data())}
"""


def ws_url(daemon, path: str) -> str:
    return daemon.gateway.replace("http://", "ws://") + path


def test_a_websocket_app_echoes_and_broadcasts_through_both_routing_styles(daemon, tmp_path):
    chat = tmp_path / "chat"
    shutil.copytree(EXAMPLES / "chat", chat)
    daemon.deploy(chat)
    with connect(ws_url(daemon, "/fn/chat/ws")) as alice:
        # by host: chat.localhost, on a socket to the gateway's address
        port = int(daemon.gateway.rsplit(":", 1)[1])
        sock = socket.create_connection(("127.0.0.1", port))
        with connect(f"ws://chat.localhost:{port}/ws", sock=sock) as bob:
            alice.send("/who")
            assert alice.recv(timeout=10) == "2 here"
            bob.send("hello from bob")
            assert alice.recv(timeout=10) == "hello from bob"
            assert bob.recv(timeout=10) == "hello from bob"
            in_flight = sum(i["in_flight"] for i in daemon.status("chat")["instances"])
            assert in_flight == 2  # each open WebSocket holds a slot
    wait_for(lambda: sum(i["in_flight"] for i in daemon.status("chat")["instances"]) == 0)
    assert daemon.get("/fn/chat/").status_code == 200  # plain HTTP on the same function


def test_a_deploy_drains_a_websocket_then_closes_it_with_1001(fresh_daemon, fn_dir, tmp_path):
    daemon = fresh_daemon.start()
    chat = tmp_path / "chat"
    shutil.copytree(EXAMPLES / "chat", chat)
    (chat / "hearth.toml").write_text(
        'name = "chat"\n[scale]\nmax = 1\nconcurrency = 1000\n[limits]\ndrain = "2s"\n'
    )
    daemon.deploy(chat)
    with connect(ws_url(daemon, "/fn/chat/ws")) as old:
        old.send("/who")
        assert old.recv(timeout=10) == "1 here"
        (chat / "main.py").write_text((chat / "main.py").read_text() + "\n# v2\n")
        assert daemon.deploy(chat)["version"] == 2  # the deploy does not wait for it
        old.send("/who")  # the old instance keeps it meanwhile
        assert old.recv(timeout=10) == "1 here"
        with connect(ws_url(daemon, "/fn/chat/ws")) as new:  # new ones reach v2
            new.send("/who")
            assert new.recv(timeout=10) == "1 here"
        with pytest.raises(ConnectionClosed) as closed:
            old.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def test_server_sent_events_arrive_as_they_are_produced(daemon, fn_dir):
    daemon.deploy(fn_dir("feed", {"main.py": STREAMER}))
    url = f"{daemon.gateway}/fn/feed"
    with httpx.Client(timeout=30) as client, client.stream("GET", f"{url}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        # the first event arrives while the response is still open: were it buffered,
        # the release below would never be sent and this would time out
        assert next(line for line in lines if line) == "data: first"
        assert client.get(f"{url}/release").json() == {"released": True}
        assert next(line for line in lines if line) == "data: second"


def test_a_client_going_away_releases_the_instances_request(daemon, fn_dir):
    daemon.deploy(fn_dir("endless", {"main.py": STREAMER}))
    daemon.get("/fn/endless/release")
    url = f"{daemon.gateway}/fn/endless/events?forever=1"
    with httpx.Client(timeout=30) as client, client.stream("GET", url) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line) == "data: first"
        assert next(line for line in lines if line) == "data: second"
    # the client is gone: the app's generator is told, and its slot is free again
    wait_for(lambda: daemon.get("/fn/endless/gone").json()["closed"] == 1)
    wait_for(lambda: sum(i["in_flight"] for i in daemon.status("endless")["instances"]) == 0)


@pytest.mark.parametrize("kind", ["wsgi", "handler", "asgi"])
def test_a_chunked_body_reaches_every_function_format_whole(daemon, fn_dir, kind):
    sources = {
        "wsgi": FLASK_BODY,
        "handler": "async def handle(request):\n    return {'bytes': len(await request.body())}\n",
        "asgi": STREAMER.replace(
            "async def gone(request):",
            "async def size(request):\n    return JSONResponse({'bytes': len(await "
            "request.body())})\n\n\nasync def gone(request):",
        ).replace(
            'Route("/gone", gone)', 'Route("/gone", gone), Route("/", size, methods=["POST"])'
        ),
    }
    name = f"chunks-{kind}"
    daemon.deploy(fn_dir(name, {"main.py": sources[kind]}))
    payload = b"x" * 100_000

    def chunks():
        for at in range(0, len(payload), 7_000):
            yield payload[at : at + 7_000]

    response = daemon.request("POST", f"/fn/{name}/", content=chunks())
    assert response.status_code == 200, response.text
    assert response.json() == {"bytes": len(payload)}


def test_a_handle_function_refuses_a_websocket(daemon, fn_dir):
    daemon.deploy(fn_dir("plain-ws", {"main.py": "def handle(request):\n    return 'http'\n"}))
    with pytest.raises(Exception) as refused:
        connect(ws_url(daemon, "/fn/plain-ws/"), open_timeout=10)
    assert "403" in str(refused.value)
