"""WebSockets through the gateway, on raw bytes: the handshake forwarded with its upgrade
headers, then a tunnel both ways; limits, idle close and drain close with 1001."""

import asyncio

import pytest

from hearth.gateway.proxy import ClientProtocol
from hearth.gateway.routes import RouteLimits
from hearth.gateway.tunnel import Frames, close_frame, frame_size
from tests.gateway.fakes import OK, FakeTransport, Setup, error_body, later

HANDSHAKE = (
    b"GET /fn/hello/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
SWITCHED = (
    b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
    b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)
HELLO = b"\x81\x05hello"  # a text frame from the server
MASKED = b"\x81\x82abcd" + bytes(a ^ b for a, b in zip(b"hi", b"ab", strict=True))


def opened(s: Setup) -> None:
    s.send(HANDSHAKE)
    head = s.upstream_got()
    assert head.startswith(b"GET /fn/hello/ws HTTP/1.1\r\n")
    assert b"upgrade: websocket\r\nconnection: Upgrade\r\n" in head
    assert b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" in head
    s.reply(SWITCHED)
    assert s.transport.take() == SWITCHED


async def test_the_handshake_goes_through_and_bytes_flow_both_ways(setup):
    opened(setup)
    assert setup.backend.in_flight == 1 and setup.pool.tunnels == 1  # counts as in flight
    setup.send(MASKED)
    assert setup.upstream_got() == MASKED  # untouched, not parsed as HTTP
    setup.reply(HELLO)
    assert setup.transport.take() == HELLO
    setup.send(b"GET / HTTP/1.1\r\n\r\n")  # in a tunnel this is just bytes
    assert setup.upstream_got() == b"GET / HTTP/1.1\r\n\r\n"


async def test_the_instance_closing_ends_it_and_frees_the_slot(setup):
    opened(setup)
    setup.upstreams[0].connection_lost(None)
    assert setup.transport.closed
    assert setup.backend.in_flight == 0 and setup.pool.tunnels == 0
    assert not setup.backend.tunnels and setup.backend.idle == []  # never reused


async def test_the_client_going_away_closes_the_instance_side(setup):
    opened(setup)
    upstream = setup.upstreams[0]
    setup.client.connection_lost(None)
    assert upstream.transport.closed
    assert setup.backend.in_flight == 0 and setup.pool.tunnels == 0


async def test_frames_sent_with_the_handshake_reach_the_instance_after_the_101(setup):
    setup.send(HANDSHAKE + MASKED)
    assert not setup.transport.reading  # nothing more is read until the instance answers
    head = setup.upstream_got()
    assert head.endswith(b"\r\n\r\n") and MASKED not in head
    setup.reply(SWITCHED + HELLO)  # the 101 and a first frame in one read
    assert setup.transport.take() == SWITCHED + HELLO
    assert setup.upstream_got() == MASKED
    assert setup.transport.reading


async def test_a_refused_handshake_is_answered_and_the_connection_closes(setup):
    setup.send(HANDSHAKE + MASKED)
    forbidden = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n"
    setup.reply(forbidden)
    assert setup.transport.take() == forbidden
    assert setup.transport.closed
    assert setup.backend.in_flight == 0 and setup.pool.tunnels == 0


async def test_an_instance_switching_protocols_unasked_is_broken():
    recycled = []
    s = Setup()
    s.pool.on_recycle = lambda pool, backend, reason: recycled.append(reason)
    s.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    s.reply(SWITCHED)
    assert s.transport.take().startswith(b"HTTP/1.1 502 ")  # none of it reached the client
    assert recycled == ["switched protocols unasked"]


async def test_past_the_limit_of_open_websockets_is_503():
    s = Setup(limits=RouteLimits(websockets=1))
    opened(s)
    second = ClientProtocol(s.gateway)  # another client of the same gateway
    transport = FakeTransport()
    second.connection_made(transport)
    second.data_received(HANDSHAKE)
    head, body = error_body(transport.take())
    assert head.startswith(b"HTTP/1.1 503 ")
    assert "1 WebSockets open" in body["error"]


async def test_an_idle_websocket_is_closed_with_1001():
    s = Setup(limits=RouteLimits(websocket_idle=60))
    opened(s)
    later(s, 30)
    assert not s.transport.closed
    s.reply(b"\x81\x7e\x00\x80" + b"x" * 100)  # a frame of 128 bytes, 28 still to come
    later(s, 61 + 30)
    assert s.transport.closed
    assert close_frame(1001) not in s.transport.take()  # not inside the instance's frame


async def test_an_idle_websocket_between_frames_gets_a_close_frame(setup):
    opened(setup)
    setup.reply(HELLO)
    setup.transport.take()
    later(setup, 301)
    assert setup.transport.take() == b"\x88\x02\x03\xe9"
    assert setup.transport.closed and setup.backend.in_flight == 0


async def test_a_drain_past_its_deadline_closes_open_websockets_with_1001(setup):
    opened(setup)
    done = await setup.gateway.drain(setup.pool, setup.backend, timeout=0.05)
    assert done is False
    assert setup.transport.take() == close_frame(1001)
    assert setup.transport.closed and setup.backend.in_flight == 0


async def test_a_drain_waits_for_a_websocket_that_closes_in_time(setup):
    opened(setup)
    draining = asyncio.ensure_future(setup.gateway.drain(setup.pool, setup.backend, timeout=5))
    await asyncio.sleep(0.01)
    setup.upstreams[0].connection_lost(None)
    assert await draining is True


async def test_other_upgrades_are_refused_after_the_request(setup):
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
    head = setup.upstream_got()
    assert b"pgrade" not in head  # forwarded as a plain request
    setup.reply(OK)
    assert setup.transport.take() == OK
    assert setup.transport.closed


@pytest.mark.parametrize(
    "head, size",
    [
        (b"\x81", None),
        (b"\x81\x05", 7),
        (b"\x81\x85", 11),  # masked: four bytes of key
        (b"\x82\x7e", None),
        (b"\x82\x7e\x01\x00", 4 + 256),
        (b"\x82\x7f" + (70000).to_bytes(8, "big"), 10 + 70000),
    ],
)
def test_frame_sizes(head, size):
    assert frame_size(head) == size


def test_frames_are_followed_across_reads():
    frames = Frames()
    stream = HELLO + b"\x82\x7e\x01\x00" + b"y" * 256 + HELLO
    for at in range(len(stream)):  # every split point
        frames.feed(stream[:at])
        assert frames.at_boundary == (at in (0, len(HELLO), len(stream) - len(HELLO)))
        frames.feed(stream[at:])
        assert frames.at_boundary
