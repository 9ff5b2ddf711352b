"""Hostile clients against the real daemon, over real sockets: each gets a clear answer or
is cut off by a deadline, and a normal client is served meanwhile."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlparse

import pytest

from tests.e2e.conftest import Daemon

HELLO = "def handle(request):\n    return 'hello'\n"
ECHO = "async def handle(request):\n    return await request.body()\n"


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """A daemon with short client deadlines, and one function deployed."""
    base = tmp_path_factory.mktemp("bad-clients")
    d = Daemon(base / "data", "--header-timeout", "1s", "--body-timeout", "1s").start()
    for name, code in (("hello", HELLO), ("echo", ECHO)):
        folder = base / name
        folder.mkdir()
        (folder / "main.py").write_text(code)
        d.deploy(folder)
    yield d
    assert d.stop() == 0, d.log()


def connect(d: Daemon) -> socket.socket:
    url = urlparse(d.gateway)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (the socket timeout fails the test otherwise)."""
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def test_streamed_huge_headers_get_431_while_others_are_served(strict):
    results: list[int] = []

    def stream_header() -> None:
        with connect(strict) as sock:
            sock.sendall(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Big: ")
            try:
                for _ in range(200):  # up to 200 KB, far past the 64 KiB limit
                    sock.sendall(b"a" * 1024)
            except OSError:
                pass  # the gateway answered and closed
            results.append(status(read_all(sock)))

    threads = [threading.Thread(target=stream_header) for _ in range(3)]
    for thread in threads:
        thread.start()
    assert strict.get("/fn/hello/").text == "hello"
    for thread in threads:
        thread.join(60)
    assert results == [431, 431, 431]
    assert strict.get("/fn/hello/").text == "hello"


def test_unknown_function_with_a_promised_body_is_answered_and_closed(strict):
    socks = [connect(strict) for _ in range(60)]
    try:
        for sock in socks:
            sock.sendall(b"POST /fn/nope/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        for sock in socks:
            response = read_all(sock)  # returns only because the gateway closes
            assert status(response) == 404
            assert b'"function": "nope"' in response
    finally:
        for sock in socks:
            sock.close()


def test_stalled_body_gets_408_and_the_instance_keeps_serving(strict):
    before = strict.status("echo")["instances"]
    with connect(strict) as sock:
        sock.sendall(b"POST /fn/echo/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n012")
        assert status(read_all(sock)) == 408
    with connect(strict) as sock:
        sock.sendall(b"GET /fn/echo/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert status(read_all(sock)) == 408
    assert strict.request("POST", "/fn/echo/", content=b"whole").text == "whole"
    after = strict.status("echo")["instances"]
    assert [i["pid"] for i in after] == [i["pid"] for i in before]
    assert not [e for e in strict.events("echo") if e["kind"] == "recycle"]


def test_malformed_chunked_body_is_400_at_once_and_nobody_is_recycled(strict):
    with connect(strict) as sock:
        sock.sendall(
            b"POST /fn/echo/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\nnot-a-size\r\n"
        )
        response = read_all(sock)  # the socket's timeout fails the test if nobody answers
    assert status(response) == 400
    assert strict.request("POST", "/fn/echo/", content=b"whole").text == "whole"
    assert not [e for e in strict.events("echo") if e["kind"] == "recycle"]


def test_host_header_is_case_insensitive_and_must_be_single(strict):
    port = strict.port
    r = strict.get("/", headers={"host": f"HELLO.LOCALHOST:{port}"})
    assert r.status_code == 200 and r.text == "hello"
    with connect(strict) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: nope.localhost\r\nHost: hello.localhost\r\n\r\n")
        assert status(read_all(sock)) == 400


@pytest.mark.parametrize(
    ("line", "expected"),
    [(b"GET /fn/hello/ HTTP/2.0\r\nHost: x\r\n\r\n", 505), (b"GET /fn/hello/\r\n\r\n", 505)],
)
def test_unsupported_versions(strict, line, expected):
    with connect(strict) as sock:
        sock.sendall(line)
        assert status(read_all(sock)) == expected
