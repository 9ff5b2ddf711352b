"""A WebSocket through the gateway, once the instance has answered its handshake with 101.

From then on the bytes flow both ways untouched. The connection keeps its slot on the
instance (it counts as in flight, for scaling and for draining) until either side closes,
it idles past `websocket_idle`, or its instance drains past its deadline. The gateway
closes it itself with 1001 (going away) in the last two cases; to write that close frame
between two of the instance's frames, never inside one, it follows where the frames the
instance sends end (`Frames`: lengths only, the payload is never looked at).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hearth.gateway.proxy import ClientProtocol, Exchange
    from hearth.gateway.routes import Backend
    from hearth.gateway.upstream import Upstream

GOING_AWAY = 1001


def close_frame(code: int) -> bytes:
    """A server's close frame (unmasked) with a status code and no reason."""
    return b"\x88\x02" + code.to_bytes(2, "big")


def frame_size(head: bytes) -> int | None:
    """The whole size (header and payload) of the frame that starts `head`; None when
    `head` is too short to tell."""
    if len(head) < 2:
        return None
    length = head[1] & 0x7F
    at = 2
    if length == 126:
        if len(head) < 4:
            return None
        length, at = int.from_bytes(head[2:4], "big"), 4
    elif length == 127:
        if len(head) < 10:
            return None
        length, at = int.from_bytes(head[2:10], "big"), 10
    if head[1] & 0x80:  # masked (a client's frame): four bytes of key
        at += 4
    return at + length


class Frames:
    """Where the frames in a byte stream end (pure: bytes in, a boundary flag out)."""

    __slots__ = ("_head", "_skip")

    def __init__(self) -> None:
        self._skip = 0  # bytes left of the frame being passed
        self._head = b""  # the start of a frame header split across reads

    @property
    def at_boundary(self) -> bool:
        return self._skip == 0 and not self._head

    def feed(self, data: bytes) -> None:
        if self._head:
            data, self._head = self._head + data, b""
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                taken = min(self._skip, end - pos)
                self._skip -= taken
                pos += taken
                continue
            size = frame_size(data[pos : pos + 14])
            if size is None:
                self._head = data[pos:]
                return
            self._skip = size


class Tunnel:
    """One open WebSocket: a client connection joined to an instance connection."""

    __slots__ = ("backend", "client", "closed", "exchange", "frames", "last", "upstream")

    def __init__(
        self, exchange: Exchange, client: ClientProtocol, upstream: Upstream, backend: Backend
    ) -> None:
        self.exchange = exchange
        self.client = client
        self.upstream = upstream
        self.backend = backend
        self.frames = Frames()
        self.closed = False
        self.last = client.loop.time()  # the gateway's sweep compares with the loop's clock

    def __repr__(self) -> str:
        return f"<Tunnel {self.backend.id} {'closed' if self.closed else 'open'}>"

    def from_client(self, data: bytes) -> None:
        self.last = self.client.loop.time()
        self.exchange.body_size += len(data)
        self.upstream.send(data)

    def from_upstream(self, data: bytes) -> None:
        self.last = self.client.loop.time()
        self.frames.feed(data)
        self.exchange.sent += len(data)
        self.client.write(data)

    def close(self, code: int | None = None) -> None:
        """End it: with `code`, the client first gets a close frame (where one fits)."""
        if self.closed:
            return
        self.closed = True
        if code is not None and self.frames.at_boundary:
            self.client.write(close_frame(code))
        self.backend.tunnels.discard(self)
        pool = self.exchange.pool
        if pool is not None:
            pool.tunnels -= 1
        self.client.tunnel = None
        self.upstream.tunnel = None
        self.exchange.tunnel_closed()
