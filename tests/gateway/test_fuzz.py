"""Property: whatever bytes a client sends, in whatever pieces, the gateway answers with
well-formed HTTP responses or closes, and by its deadlines every connection ends with no
request left holding an instance."""

import asyncio

import httptools
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hearth.gateway import GatewayConfig
from hearth.gateway.routes import RouteLimits
from tests.gateway.fakes import OK, Setup, later

METHODS = st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"G\x00T", b""])
TARGETS = st.sampled_from([b"/fn/hello/", b"/fn/hello", b"/fn/nope/x", b"/", b"*", b"/fn/", b""])
VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTX/1.1", b""])
HEADER_NAMES = st.sampled_from(
    [b"Host", b"Content-Length", b"Transfer-Encoding", b"Connection", b"Expect", b"X-A", b""]
)
HEADER_VALUES = st.one_of(
    st.sampled_from(
        [
            *(b"hello.localhost", b"x", b"5", b"-1", b"99999999999", b"chunked", b"close"),
            *(b"100-continue", b"keep-alive", b"gzip, chunked"),
        ]
    ),
    st.binary(max_size=20),
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """Mostly-HTTP requests: real structure, hostile details."""
    head = draw(METHODS) + b" " + draw(TARGETS) + b" " + draw(VERSIONS) + b"\r\n"
    for _ in range(draw(st.integers(0, 5))):
        head += draw(HEADER_NAMES) + b": " + draw(HEADER_VALUES) + b"\r\n"
    body = draw(
        st.one_of(
            st.just(b""),
            st.binary(max_size=40),
            st.sampled_from([b"5\r\nhello\r\n0\r\n\r\n", b"5\r\nhel", b"zz\r\n", b"0\r\n\r\n"]),
        )
    )
    return head + draw(st.sampled_from([b"\r\n", b"", b"\n"])) + body


REPLIES = st.sampled_from(
    [
        OK,
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok",  # never finished
        b"NOT HTTP\r\n\r\n",  # a broken instance
        OK + b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged",  # a forging one
    ]
)

STREAMS = st.one_of(
    st.lists(requests(), min_size=1, max_size=3).map(b"".join),
    st.binary(max_size=300),
)


def parse_responses(data: bytes) -> int:
    """How many complete responses `data` holds; raises if it is not valid HTTP."""
    complete = []

    class Sink:
        def on_message_complete(self) -> None:
            complete.append(1)

    parser = httptools.HttpResponseParser(Sink())
    if data:
        parser.feed_data(data)
    return len(complete)


async def exercise(stream: bytes, cuts: list[int], replies: list[bytes]) -> None:
    config = GatewayConfig(max_head=512, max_url=128, max_headers=8)
    s = Setup(RouteLimits(body=64, timeout=30), config=config)
    pieces, last = [], 0
    answered: list[object] = []
    for cut in sorted(c % (len(stream) + 1) for c in cuts):
        pieces.append(stream[last:cut])
        last = cut
    pieces.append(stream[last:])
    for piece in pieces:
        if piece and not s.transport.closed:
            s.send(piece)
        for upstream in s.upstreams:  # the instance answers each request once
            if upstream.exchange is not None and upstream.exchange not in answered:
                answered.append(upstream.exchange)
                upstream.data_received(replies.pop() if replies else OK)
    for exchange in list(s.client.line):  # a handler that never answers: the function's timeout
        if exchange.timer is not None:
            exchange.timed_out()
    later(s, 3600)  # every deadline has passed
    assert s.transport.closed
    assert s.backend.in_flight == 0
    assert not s.pool.waiters
    parse_responses(bytes(s.transport.written))
    assert b"forged" not in s.transport.written


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(STREAMS, st.lists(st.integers(0, 400), max_size=6), st.lists(REPLIES, max_size=4))
def test_any_bytes_get_an_answer_or_a_close(
    stream: bytes, cuts: list[int], replies: list[bytes]
) -> None:
    asyncio.run(exercise(stream, cuts, list(replies)))
