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


class Upstream(asyncio.Protocol):
    __slots__ = ("_head_only", "backend", "exchange", "parser", "reusable", "transport")

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.exchange: Exchange | None = None
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.reusable = True
        self._head_only = False

    def __repr__(self) -> str:
        state = "active" if self.exchange else "idle"
        return f"<Upstream {self.backend.id} {state}>"

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            self.close()  # an instance must not speak unasked
            return
        exchange.forward_response(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.reusable = False
            exchange.upstream_failed()
            return
        if self._head_only:  # a response to HEAD has no body, whatever its headers say
            self._head_only = False
            keep_alive = self.parser.should_keep_alive()
            self.parser = httptools.HttpResponseParser(self)
            self._complete(keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self.transport = None
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

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.status = self.parser.get_status_code()
            if exchange.method == b"HEAD" and exchange.status >= 200:
                self._head_only = True

    def on_message_complete(self) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # an interim response; the final one follows
        self._complete(self.parser.should_keep_alive())

    def _complete(self, keep_alive: bool) -> None:
        if self.exchange is not None:
            self.exchange.response_complete(self.reusable and keep_alive)

    # used by the exchange

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        self.reusable = False
        self.exchange = None
        if self.transport is not None:
            self.transport.close()
