"""Hostile and broken clients on raw bytes: every one gets a clear answer or a close, at once
or by a deadline, and none of them costs a healthy instance anything."""

import asyncio

import pytest

from hearth.gateway import GatewayConfig
from hearth.gateway.proxy import LINGER, ClientProtocol
from hearth.gateway.routes import RouteLimits
from tests.gateway.fakes import OK, FakeTransport, Setup, error_body, later


def status_of(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


# 1. request line and header size


async def test_huge_header_streamed_in_pieces_is_431():
    s = Setup(config=GatewayConfig(max_head=4096))
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Big: ")
    for _ in range(10):
        s.send(b"a" * 1000)
        if s.transport.closed:
            break
    head, body = error_body(s.transport.take())
    assert head.startswith(b"HTTP/1.1 431 ")
    assert "4096" in body["error"]
    assert s.transport.closed
    assert s.upstream_got() == b""


async def test_huge_header_in_one_read_is_431():
    s = Setup(config=GatewayConfig(max_head=4096))
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
    assert status_of(s.transport.take()) == 431
    assert s.transport.closed


async def test_too_many_headers_is_431():
    s = Setup(config=GatewayConfig(max_headers=10))
    fields = b"".join(b"X-%d: 1\r\n" % i for i in range(11))
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    head, body = error_body(s.transport.take())
    assert head.startswith(b"HTTP/1.1 431 ")
    assert "header fields" in body["error"]


async def test_long_url_is_414():
    s = Setup(config=GatewayConfig(max_url=100))
    s.send(b"GET /fn/hello/" + b"a" * 50)
    assert s.transport.take() == b""  # still under the limit
    s.send(b"a" * 100 + b" HTTP/1.1\r\n\r\n")
    assert status_of(s.transport.take()) == 414
    assert s.transport.closed


async def test_headers_at_the_limit_pass():
    s = Setup(config=GatewayConfig(max_head=4096, max_headers=10))
    fields = b"".join(b"X-%d: 1\r\n" % i for i in range(9))
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert s.upstream_got().startswith(b"GET /fn/hello/ ")


# 2. bodies that never come


async def test_unknown_function_with_a_body_that_never_comes_is_404_at_once(setup):
    setup.send(b"POST /fn/nope/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    head, body = error_body(setup.transport.take())
    assert head.startswith(b"HTTP/1.1 404 ")
    assert body["function"] == "nope"
    assert b"connection: close" in head
    assert setup.transport.closed


async def test_unknown_function_with_chunked_body_pending_is_404_at_once(setup):
    setup.send(b"POST /fn/nope/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert status_of(setup.transport.take()) == 404
    assert setup.transport.closed


async def test_unknown_function_with_whole_body_keeps_the_connection(setup):
    setup.send(b"POST /fn/nope/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    assert status_of(setup.transport.take()) == 404
    assert not setup.transport.closed


async def test_expect_continue_to_unknown_function_is_404_without_waiting(setup):
    setup.send(
        b"POST /fn/nope/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    assert status_of(setup.transport.take()) == 404


async def test_stalled_body_gets_408_and_the_instance_is_not_blamed():
    timeouts = []
    s = Setup(config=GatewayConfig(body_timeout=5))
    s.pool.on_recycle = lambda pool, backend, reason: timeouts.append(backend)
    s.send(b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n012")
    assert s.upstream_got().endswith(b"012")
    later(s, 2)
    assert not s.transport.closed  # not stalled long yet
    later(s, 10)
    head, _ = error_body(s.transport.take())
    assert head.startswith(b"HTTP/1.1 408 ")
    assert s.transport.closed
    assert s.upstreams[0].transport.closed  # the half-sent request is abandoned
    assert s.backend.in_flight == 0
    assert timeouts == []


async def test_body_deadline_does_not_run_while_the_gateway_is_not_reading():
    s = Setup(config=GatewayConfig(body_timeout=5))
    s.send(b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n012")
    s.client.pause_reading(
        "upstream"
    )  # the instance is not taking the body: not the client's fault
    later(s, 60)
    assert not s.transport.closed


async def test_slow_body_past_the_function_timeout_is_408_not_a_recycle():
    timeouts = []
    s = Setup(RouteLimits(timeout=0.01))
    s.pool.on_recycle = lambda pool, backend, reason: timeouts.append(backend)
    s.send(b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n012")
    s.upstreams[0].exchange.timed_out()
    assert status_of(s.transport.take()) == 408
    assert timeouts == []


async def test_stuck_handler_after_the_whole_body_is_still_recycled():
    timeouts = []
    s = Setup(RouteLimits(timeout=0.01))
    s.pool.on_recycle = lambda pool, backend, reason: timeouts.append(backend)
    s.send(b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n012")
    s.upstreams[0].exchange.timed_out()
    assert status_of(s.transport.take()) == 504
    assert timeouts == [s.backend]


async def test_timeout_after_the_response_began_closes_without_recycling():
    timeouts = []
    s = Setup(RouteLimits(timeout=0.01))
    s.pool.on_recycle = lambda pool, backend, reason: timeouts.append(backend)
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    s.reply(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01")
    s.upstreams[0].exchange.timed_out()
    assert s.transport.take().endswith(b"01")  # no error page inside a response
    assert s.transport.closed
    assert timeouts == []


# 4. malformed bodies


async def test_malformed_chunked_body_is_400_at_once_and_the_instance_is_untouched():
    timeouts = []
    s = Setup()
    s.pool.on_recycle = lambda pool, backend, reason: timeouts.append(backend)
    s.send(b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    s.send(b"5\r\nhello\r\nZZZ\r\n")
    head, body = error_body(s.transport.take())
    assert head.startswith(b"HTTP/1.1 400 ")
    assert "malformed" in body["error"]
    assert s.transport.closed
    assert s.backend.in_flight == 0
    assert s.upstreams[0].transport.closed  # the instance sees a disconnect, nothing more
    assert timeouts == []


async def test_malformed_next_request_after_a_good_one_closes_after_the_answer(setup):
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\nBAD REQUEST LINE\r\n\r\n")
    setup.reply(OK)
    assert setup.transport.take() == OK
    assert setup.transport.closed


# 8. host, versions


async def test_host_routing_ignores_case(setup):
    setup.send(b"GET / HTTP/1.1\r\nHost: HELLO.LOCALHOST:8080\r\n\r\n")
    assert setup.upstream_got().startswith(b"GET / HTTP/1.1\r\n")


async def test_two_host_headers_are_400(setup):
    setup.send(b"GET / HTTP/1.1\r\nHost: nope.localhost\r\nHost: hello.localhost\r\n\r\n")
    head, body = error_body(setup.transport.take())
    assert head.startswith(b"HTTP/1.1 400 ")
    assert "Host" in body["error"]
    assert setup.upstream_got() == b""
    assert setup.transport.closed


@pytest.mark.parametrize(
    "line", [b"GET /fn/hello/ HTTP/2.0\r\nHost: x\r\n\r\n", b"GET /fn/hello/\r\n\r\n"]
)
async def test_unsupported_http_versions_are_refused(line):
    s = Setup()
    s.send(line)
    out = s.transport.take()
    assert status_of(out) in (400, 505)
    assert s.transport.closed
    assert s.upstream_got() == b""


async def test_http_2_request_line_is_505(setup):
    setup.send(b"GET /fn/hello/ HTTP/2.0\r\nHost: x\r\n\r\n")
    assert status_of(setup.transport.take()) == 505


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: 3\r\nContent-Length: 4\r\n",
    ],
)
async def test_ambiguous_body_framing_is_400(head):
    s = Setup()
    s.send(b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\n" + head + b"\r\nabcd")
    assert status_of(s.transport.take()) == 400
    assert s.transport.closed
    assert s.upstream_got() == b""


async def test_nothing_is_parsed_or_answered_after_a_closing_answer(setup):
    # Found by the fuzz test: the second request ends the connection (HTTP/1.0); the third,
    # in the same read, must get no answer of its own.
    setup.send(
        b"GET /fn/nope/ HTTP/1.1\r\n\r\nGET /fn/nope/ HTTP/1.0\r\n\r\nGET /fn/hello/ HTTP/1.1\r\n\r\n"
    )
    out = setup.transport.take()
    assert out.count(b"HTTP/1.1 ") == 2
    assert out.count(b"HTTP/1.1 404 ") == 2
    assert out.index(b"connection: close") > out.rindex(b"HTTP/1.1 404 ")
    assert setup.transport.closed
    assert setup.upstream_got() == b""


async def test_refused_client_still_sending_gets_a_half_close_then_a_close(setup):

    transport = FakeTransport(eof=True)
    setup.client.connection_made(transport)
    setup.client.pause_reading("buffer")
    setup.send(b"POST /fn/nope/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    assert status_of(transport.take()) == 404
    assert transport.eof_written  # the answer goes out whole
    assert transport.reading  # what the client still sends is read and dropped
    assert not transport.closed
    setup.send(b"x" * 1000)
    assert transport.take() == b""
    await asyncio.sleep(LINGER + 0.2)
    assert transport.closed


# issue 8: responses are framed, not passed through


FORGED = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged"


async def test_bytes_past_the_end_of_a_response_never_reach_the_client():
    recycled = []
    s = Setup()
    s.pool.on_recycle = lambda pool, backend, reason: recycled.append(reason)
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    s.reply(OK + FORGED)  # a whole response, then a forged answer for the next request
    out = s.transport.take()
    assert b"forged" not in out
    assert status_of(out) == 502
    assert recycled == ["wrote past the end of its response"]
    assert s.backend.idle == []  # the connection is not reused


async def test_forgery_in_a_later_read_is_caught_too():
    recycled = []
    s = Setup()
    s.pool.on_recycle = lambda pool, backend, reason: recycled.append(reason)
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    s.reply(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    s.reply(b"ok" + FORGED)
    out = s.transport.take()
    assert b"forged" not in out
    assert s.transport.closed  # part of the response went out: the connection ends
    assert recycled


async def test_garbage_instead_of_a_response_is_502():
    recycled = []
    s = Setup()
    s.pool.on_recycle = lambda pool, backend, reason: recycled.append(reason)
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    s.reply(b"NOT HTTP\r\n\r\n")
    out = s.transport.take()
    assert status_of(out) == 502
    assert b"NOT HTTP" not in out
    assert recycled and "malformed" in recycled[0]


async def test_head_response_followed_by_a_body_is_broken():
    s = Setup()
    s.send(b"HEAD /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    s.reply(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged")
    out = s.transport.take()
    assert b"forged" not in out
    assert status_of(out) == 502


async def test_interim_response_then_the_final_one_is_fine(setup):
    setup.send(b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    setup.reply(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
    assert setup.transport.take() == b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    assert setup.backend.idle == setup.upstreams


async def test_an_instance_speaking_unasked_is_replaced():
    recycled = []
    s = Setup()
    s.pool.on_recycle = lambda pool, backend, reason: recycled.append(reason)
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    s.reply(OK)
    s.reply(FORGED)  # after its response ended, on the idle pooled connection
    assert s.transport.take() == OK
    assert s.upstreams[0].transport.closed
    assert recycled == ["wrote outside of any response"]


async def test_connections_per_client_address_are_bounded():
    s = Setup(config=GatewayConfig(max_per_client=3))  # the setup's own connection is one
    extra = []
    for _ in range(3):
        client = ClientProtocol(s.gateway)
        transport = FakeTransport()
        client.connection_made(transport)
        extra.append((client, transport))
    assert [t.closed for _, t in extra] == [False, False, True]
    assert status_of(extra[2][1].take()) == 503
    extra[2][0].connection_lost(None)
    extra[0][0].connection_lost(None)  # one leaves: room for another
    again = FakeTransport()
    ClientProtocol(s.gateway).connection_made(again)
    assert not again.closed
    other = FakeTransport(peer=("10.9.9.9", 1))
    ClientProtocol(s.gateway).connection_made(other)
    assert not other.closed  # another address has its own count


async def test_an_unreachable_instance_hands_the_request_to_another():
    s = Setup(upstreams=0)  # the only known backend has no pooled connection
    s.pool.backends[0].path = "/nonexistent/dead.sock"
    from hearth.gateway import Backend
    from hearth.gateway.upstream import Upstream

    alive = Backend("hello@1#2", "/nonexistent/alive.sock", 4)
    upstream = Upstream(alive)
    upstream.connection_made(FakeTransport())
    alive.idle.append(upstream)
    s.pool.add(alive)  # after the dead one: picked second (both idle)
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.05)  # the failed connect
    assert upstream.transport.take().startswith(b"GET /fn/hello/ ")
    upstream.data_received(OK)
    assert s.transport.take() == OK
    assert s.backend.in_flight == 0
