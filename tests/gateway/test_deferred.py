"""Asynchronous invocations at the gateway, on raw bytes: read whole, handed over, 202."""

import json

from hearth.gateway.deferred import Unacceptable
from hearth.gateway.routes import RouteLimits
from tests.gateway.fakes import Setup, error_body


def storing(s: Setup, fail: bool = False, refuse: str = "") -> list:
    kept = []

    def defer(request):
        if fail:
            raise OSError("disk full")
        if refuse:
            raise Unacceptable(refuse)
        kept.append(request)
        return f"inv-{len(kept)}", f"http://api/v1/invocations/inv-{len(kept)}"

    s.gateway.defer = defer
    return kept


async def test_without_a_store_async_is_501(setup):
    setup.send(b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Hearth-Async: 1\r\n\r\n")
    head, body = error_body(setup.transport.take())
    assert head.startswith(b"HTTP/1.1 501 ") and "not enabled" in body["error"]


async def test_an_async_request_is_stored_whole_and_answered_202(setup):
    kept = storing(setup)
    setup.send(
        b"POST /fn/hello/resize?w=10 HTTP/1.1\r\nHost: x\r\nX-Hearth-Async: 1\r\n"
        b"Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    answer = setup.transport.take()
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 202 Accepted\r\n")
    assert b"\r\nlocation: http://api/v1/invocations/inv-1\r\n" in head
    assert b"\r\nx-hearth-invocation-id: inv-1\r\n" in head
    assert json.loads(payload) == {
        "id": "inv-1",
        "status": "queued",
        "location": "http://api/v1/invocations/inv-1",
    }
    (request,) = kept
    assert (request.function, request.method, request.url) == (
        "hello",
        "POST",
        "/fn/hello/resize?w=10",
    )
    assert request.body == b"abcde"  # de-chunked, whole
    names = [name.lower() for name, _ in request.headers]
    assert "content-type" in names and "transfer-encoding" not in names
    assert "x-hearth-async" not in names
    assert setup.upstream_got() == b""  # nothing ran
    assert setup.backend.in_flight == 0 and not setup.transport.closed


async def test_a_private_functions_key_is_checked_now_and_never_stored(setup):
    kept = storing(setup)
    from hearth.gateway.access import key_hash

    access = setup.gateway.routes["hello"].access
    access.configure(public=False, rate=None)
    access.keys = frozenset({key_hash("k1")})
    setup.send(b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Hearth-Async: 1\r\n\r\n")
    assert setup.transport.take().startswith(b"HTTP/1.1 401 ")
    setup.send(
        b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Hearth-Async: 1\r\n"
        b"Authorization: Bearer k1\r\ncontent-length: 0\r\n\r\n"
    )
    assert setup.transport.take().startswith(b"HTTP/1.1 202 ")
    assert all(name.lower() != "authorization" for name, _ in kept[0].headers)


async def test_over_the_body_limit_is_413_and_nothing_stored():
    s = Setup(limits=RouteLimits(body=4))
    kept = storing(s)
    s.send(
        b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Hearth-Async: 1\r\ncontent-length: 10\r\n\r\n"
    )
    assert s.transport.take().startswith(b"HTTP/1.1 413 ")
    assert kept == []


async def test_a_store_that_fails_is_503(setup):
    storing(setup, fail=True)
    setup.send(
        b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Hearth-Async: 1\r\ncontent-length: 0\r\n\r\n"
    )
    head, body = error_body(setup.transport.take())
    assert head.startswith(b"HTTP/1.1 503 ") and "disk full" in body["error"]


async def test_only_the_daemon_may_ask_for_a_longer_timeout(setup):
    secret = setup.gateway.internal
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Hearth-Timeout: 900\r\n\r\n")
    assert setup.client.line[0].timeout == 0.0
    setup.upstreams[0].data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
    setup.transport.take()
    setup.send(
        b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Hearth-Timeout: 900\r\n"
        b"X-Hearth-Internal: %b\r\n\r\n" % secret
    )
    assert setup.client.line[0].timeout == 900.0
    assert b"900" not in setup.upstream_got()


async def test_a_request_the_store_will_not_take_is_400_and_the_connection_stays(setup):
    storing(setup, refuse="X-Callback-Url 'ftp://x': only http:// and https:// URLs")
    setup.send(
        b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Hearth-Async: 1\r\n"
        b"X-Callback-Url: ftp://x\r\ncontent-length: 2\r\n\r\nhi"
    )
    head, body = error_body(setup.transport.take())
    assert head.startswith(b"HTTP/1.1 400 ") and "only http://" in body["error"]
    assert not setup.transport.closed and setup.upstream_got() == b""


async def test_an_invocations_id_and_attempt_reach_the_function_from_the_daemon_only(setup):
    setup.send(
        b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Hearth-Invocation-Id: forged\r\n"
        b"X-Hearth-Attempt: 9\r\n\r\n"
    )
    got = setup.upstream_got().lower()
    assert b"forged" not in got and b"x-hearth-attempt" not in got
    setup.upstreams[0].data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
    setup.transport.take()
    setup.send(
        b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Hearth-Invocation-Id: abc\r\n"
        b"X-Hearth-Attempt: 2\r\nX-Hearth-Internal: %b\r\n\r\n" % setup.gateway.internal
    )
    got = setup.upstream_got()
    assert b"\r\nX-Hearth-Invocation-Id: abc\r\n" in got
    assert b"\r\nX-Hearth-Attempt: 2\r\n" in got
    assert setup.gateway.internal not in got
