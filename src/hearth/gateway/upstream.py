"""A keep-alive Unix-socket connection from the gateway to one instance.

Response bytes are forwarded to the client as they arrive, untouched; the parser only
watches them to find where each response ends, so the connection can go back to the pool.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import httptools

if TYPE_CHECKING:
    from hearth.gateway.proxy import Exchange
    from hearth.gateway.routes import Backend
    from hearth.gateway.tunnel import Tunnel


class Overrun(Exception):
    """The instance wrote past the end of its response."""


class Upstream(asyncio.Protocol):
    __slots__ = (
        "_done",
        "_head_only",
        "_tail",
        "backend",
        "exchange",
        "parser",
        "reusable",
        "transport",
        "tunnel",
    )

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.exchange: Exchange | None = None
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.reusable = True
        self._head_only = False
        self._done: bool | None = None  # keep-alive of a response that ended in this read
        self._tail = b""  # the last bytes of a HEAD response's head seen so far
        self.tunnel: Tunnel | None = None  # after a 101: bytes pass through, unparsed

    def __repr__(self) -> str:
        state = "active" if self.exchange else "idle"
        return f"<Upstream {self.backend.id} {state}>"

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        """Parse first, forward after: what an instance writes beyond the end of the response
        it owes never reaches a client (it could forge the answer to someone's next request)."""
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.from_upstream(data)
            return
        exchange = self.exchange
        if exchange is None:  # an instance must not speak unasked: it may be forging
            self.close()
            pool = self.backend.pool
            if pool is not None and pool.on_recycle is not None and self.backend.routable:
                pool.on_recycle(pool, self.backend, "wrote outside of any response")
            return
        self._done = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            overrun = isinstance(exc.__context__, Overrun)
            self._broken(exchange, "wrote past the end of its response" if overrun else str(exc))
            return
        except httptools.HttpParserError as exc:
            self._broken(exchange, f"sent a malformed response ({exc})")
            return
        except httptools.HttpParserUpgrade as exc:  # 101: a WebSocket from here on
            if not exchange.upgrade or exchange.status != 101:
                self._broken(exchange, "switched protocols unasked")
                return
            at = exc.args[0]
            exchange.forward_response(data[:at])
            exchange.open_tunnel(self, data[at:])
            return
        if self._head_only:
            end = self._head_end(data)
            if end is None:
                exchange.forward_response(data)
                return
            if end < len(data):
                self._broken(exchange, "wrote a body after its response to HEAD")
                return
            exchange.forward_response(data)
            self._head_only = False
            keep_alive = self.parser.should_keep_alive()
            self.parser = httptools.HttpResponseParser(self)
            self._complete(keep_alive)
            return
        exchange.forward_response(data)
        if self._done is not None:
            self._complete(self._done)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self.transport = None
        if self.tunnel is not None:
            self.tunnel.close()
            return
        if self.exchange is not None:
            self.exchange.upstream_failed()
        elif self in self.backend.idle:
            self.backend.idle.remove(self)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.pause_reading("upstream")

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.resume_reading("upstream")

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self._done is not None:
            raise Overrun

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.status = self.parser.get_status_code()
            if exchange.method == b"HEAD" and exchange.status >= 200:
                self._head_only = True

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # an interim response; the final one follows
        self._done = self.parser.should_keep_alive()

    def _head_end(self, data: bytes) -> int | None:
        """Where the head of a HEAD response ends in `data` (None: not in this read)."""
        seen = self._tail + data
        at = seen.find(b"\r\n\r\n")
        if at < 0:
            self._tail = seen[-3:]
            return None
        self._tail = b""
        return at + 4 - (len(seen) - len(data))

    def _complete(self, keep_alive: bool) -> None:
        if self.exchange is not None:
            self.exchange.response_complete(self.reusable and keep_alive)

    def _broken(self, exchange: Exchange, reason: str) -> None:
        self.reusable = False
        exchange.instance_broken(reason)

    # used by the exchange

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        self.reusable = False
        self.exchange = None
        if self.transport is not None:
            self.transport.close()
