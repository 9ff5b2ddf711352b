"""The gateway on raw bytes: mock transports on both sides, no sockets."""

import asyncio

from hearth.gateway import Backend, Gateway, GatewayConfig, Pool
from hearth.gateway.proxy import ClientProtocol
from hearth.gateway.routes import RouteLimits
from hearth.gateway.upstream import Upstream
from tests.gateway.fakes import OK, FakeTransport, Setup, error_body, later


async def test_forwards_rewritten_head_and_raw_response(setup):
    setup.send(
        b"GET /fn/hello/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
    )
    head = setup.upstream_got()
    assert head.startswith(b"GET /fn/hello/x?y=1 HTTP/1.1\r\n")
    assert b"Host: 127.0.0.1:8080\r\n" in head
    assert b"x-forwarded-for: 10.1.2.3\r\n" in head
    assert b"6.6.6.6" not in head  # a client cannot claim another address
    assert b"x-forwarded-prefix: /fn/hello\r\n" in head
    assert b"x-forwarded-proto: http\r\n" in head
    assert head.endswith(b"\r\n\r\n")
    setup.reply(OK)
    assert setup.transport.take() == OK
    assert setup.backend.in_flight == 0
    assert setup.backend.idle == setup.upstreams  # back in the pool


async def test_host_routing_has_no_prefix(setup):
    setup.send(b"GET / HTTP/1.1\r\nHost: hello.localhost:8080\r\n\r\n")
    head = setup.upstream_got()
    assert head.startswith(b"GET / HTTP/1.1\r\n")
    assert b"x-forwarded-prefix" not in head


async def test_bare_prefix_gets_a_slash(setup):
    setup.send(b"GET /fn/hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert setup.upstream_got().startswith(b"GET /fn/hello/ HTTP/1.1\r\n")


async def test_keep_alive_serves_requests_in_turn(setup):
    for _ in range(3):
        setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert setup.upstream_got().startswith(b"GET /fn/hello/")
        setup.reply(OK)
        assert setup.transport.take() == OK
    assert not setup.transport.closed
    assert setup.backend.requests == 3


async def test_pipelined_requests_answer_in_order(setup):
    setup.send(
        b"GET /fn/hello/1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /fn/hello/2 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /fn/nope/3 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert setup.upstream_got().startswith(b"GET /fn/hello/1 ")
    assert not setup.transport.reading  # no more parsing until the line moves
    setup.reply(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n1")
    assert setup.upstream_got().startswith(b"GET /fn/hello/2 ")
    setup.reply(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n2")
    out = setup.transport.take()
    assert out.startswith(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n1HTTP/1.1 200 OK")
    assert b"HTTP/1.1 404 Not Found" in out
    assert out.index(b"\r\n\r\n2") < out.index(b"404")
    assert setup.transport.reading


async def test_chunked_request_is_rechunked(setup):
    setup.send(
        b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    sent = setup.upstream_got()
    head, _, body = sent.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"


async def test_body_streams_after_head(setup):
    setup.send(b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
    assert setup.upstream_got().endswith(b"\r\n\r\n01234")
    setup.send(b"56789")
    assert setup.upstream_got() == b"56789"


async def test_chunked_response_streams_through(setup):
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    setup.reply(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
    assert setup.transport.take().endswith(b"3\r\nabc\r\n")
    assert setup.backend.in_flight == 1
    setup.reply(b"0\r\n\r\n")
    assert setup.transport.take() == b"0\r\n\r\n"
    assert setup.backend.in_flight == 0


async def test_head_response_completes_without_body(setup):
    setup.send(b"HEAD /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    setup.reply(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
    assert setup.backend.in_flight == 0
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    setup.upstream_got()
    setup.reply(OK)
    assert setup.transport.take().endswith(b"ok")


async def test_unknown_function_is_404_json_and_keeps_connection(setup):
    setup.send(b"GET /fn/nope/ HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = error_body(setup.transport.take())
    assert head.startswith(b"HTTP/1.1 404 ")
    assert body["function"] == "nope"
    assert "nope" in body["error"]
    assert not setup.transport.closed


async def test_malformed_request_is_400_and_closes(setup):
    setup.send(b"NOT HTTP AT ALL\r\n\r\n")
    head, _body = error_body(setup.transport.take())
    assert head.startswith(b"HTTP/1.1 400 ")
    assert setup.transport.closed


async def test_body_over_limit_is_413_without_reading_it():
    s = Setup(RouteLimits(body=10))
    s.send(b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
    head, _body = error_body(s.transport.take())
    assert head.startswith(b"HTTP/1.1 413 ")
    assert s.transport.closed
    assert s.upstream_got() == b""


async def test_chunked_body_over_limit_is_413():
    s = Setup(RouteLimits(body=8))
    s.send(b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    s.send(b"5\r\nhello\r\n5\r\nworld\r\n")
    assert s.transport.take().startswith(b"HTTP/1.1 413 ")
    assert s.transport.closed
    assert s.backend.in_flight == 0


async def test_instance_gone_mid_request_is_502(setup):
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    setup.upstreams[0].connection_lost(ConnectionResetError())
    head, _body = error_body(setup.transport.take())
    assert head.startswith(b"HTTP/1.1 502 ")
    assert setup.backend.in_flight == 0


async def test_instance_gone_mid_response_closes_client(setup):
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    setup.reply(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01")
    setup.upstreams[0].connection_lost(None)
    assert setup.transport.closed


async def test_queue_full_is_503_with_retry_after():
    s = Setup(RouteLimits(queue=1), concurrency=1)
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")  # takes the only slot
    second, third = Setup.__new__(Setup), Setup.__new__(Setup)
    for other in (second, third):
        other.client = ClientProtocol(s.gateway)
        other.transport = FakeTransport()
        other.client.connection_made(other.transport)
    second.client.data_received(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")  # queued
    third.client.data_received(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")  # rejected
    head, _body = error_body(third.transport.take())
    assert head.startswith(b"HTTP/1.1 503 ")
    assert b"retry-after: 1" in head
    assert second.transport.take() == b""
    assert s.demands >= 1
    s.reply(OK)  # the slot frees; the queued request gets the pooled connection
    assert s.upstream_got().startswith(b"GET /fn/hello/ ")
    s.reply(OK)
    assert second.transport.take() == OK


async def test_timeout_is_504():
    s = Setup(RouteLimits(timeout=0.05))
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.15)
    head, _body = error_body(s.transport.take())
    assert head.startswith(b"HTTP/1.1 504 ")
    assert s.backend.in_flight == 0
    assert s.backend.idle == []  # a stuck connection is not reused


async def test_response_connection_close_closes_client(setup):
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    setup.reply(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
    assert setup.transport.closed
    assert setup.backend.idle == []


async def test_client_connection_close_is_honoured(setup):
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = setup.upstream_got()
    assert b"Connection: close" not in head  # the pooled connection stays open
    setup.reply(OK)
    assert setup.transport.closed
    assert setup.backend.idle == setup.upstreams


async def test_client_gone_releases_slot(setup):
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert setup.backend.in_flight == 1
    setup.client.connection_lost(None)
    assert setup.backend.in_flight == 0
    assert setup.upstreams[0].transport.closed  # the instance sees the disconnect


async def test_version_switch_hands_queued_requests_to_the_new_pool():
    s = Setup(concurrency=1)
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")  # takes the only slot
    waiting = ClientProtocol(s.gateway)
    waiting_transport = FakeTransport()
    waiting.connection_made(waiting_transport)
    waiting.data_received(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(s.pool.waiters) == 1
    new_pool = Pool("hello", 2, RouteLimits())
    new_backend = Backend("hello@2#1", "/nonexistent.sock", 4)
    upstream = Upstream(new_backend)
    upstream.connection_made(FakeTransport())
    new_backend.idle.append(upstream)
    new_pool.add(new_backend)
    s.gateway.set_pools("hello", [new_pool])
    assert upstream.transport.take().startswith(b"GET /fn/hello/ ")
    upstream.data_received(OK)
    assert waiting_transport.take() == OK
    s.reply(OK)  # the old version finishes what it had
    assert s.transport.take() == OK


async def test_weighted_pools_share_traffic():
    gateway = Gateway("localhost")
    pools = [Pool("hello", 1, RouteLimits(), weight=90), Pool("hello", 2, RouteLimits(), weight=10)]
    route = gateway.set_pools("hello", pools)
    picks = [route.choose().version for _ in range(2000)]
    assert 1600 < picks.count(1) < 1990
    assert picks.count(1) + picks.count(2) == 2000


async def test_idle_connections_are_closed():
    s = Setup(config=GatewayConfig(keepalive=5))
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    later(s, 10)
    assert not s.transport.closed  # a request in flight keeps it open
    s.reply(OK)
    later(s, 1)
    assert not s.transport.closed  # just finished: not idle yet
    later(s, 10)
    assert s.transport.closed


async def test_slow_headers_get_408_and_close():
    s = Setup(config=GatewayConfig(header_timeout=5))
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n")  # never finished
    later(s, 1)
    assert not s.transport.closed
    later(s, 10)
    assert s.transport.take().startswith(b"HTTP/1.1 408 ")
    assert s.transport.closed
