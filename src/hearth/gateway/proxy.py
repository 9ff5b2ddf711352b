"""The client side of the gateway: one protocol object per connection, one exchange per request.

An exchange is born when a request's headers are parsed. Exchanges on a connection run
one at a time in arrival order (HTTP/1.1 pipelining): each waits for a backend slot, takes
a pooled upstream connection, sends the rewritten head and streams the body, and returns
the response bytes as they come.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from hearth.gateway.access import Headers, Refusal
from hearth.gateway.deferred import Unacceptable, accepted, deferred
from hearth.gateway.errors import error_response
from hearth.gateway.meter import CLIENT_GONE
from hearth.gateway.routes import Backend, Pool, pick, route_name
from hearth.gateway.trace import Trace, trace_of
from hearth.gateway.tunnel import GOING_AWAY, Tunnel
from hearth.gateway.upstream import Upstream

if TYPE_CHECKING:
    from hearth.gateway.server import Gateway

# What the function may take as the daemon's word (an asynchronous invocation's id and
# attempt): forwarded on the daemon's own requests only; a client's are dropped.
DAEMON_ONLY = frozenset({b"x-hearth-invocation-id", b"x-hearth-attempt"})
# Not forwarded: hop-by-hop headers, and the headers the gateway sets itself (the client's
# request id and traceparent are read, then forwarded as the gateway decided).
DROP = frozenset(
    {
        b"x-request-id",
        b"traceparent",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-prefix",
        b"x-hearth-internal",
        b"x-hearth-async",
        b"x-hearth-timeout",
        *DAEMON_ONLY,
    }
)
BODY_BUFFER = 256 * 1024
LINGER = 2.0  # seconds a refused client may go on sending before the connection closes
MAX_RECORDS = 200_000  # finished requests kept for the access log until it is written


class Exchange:
    """One request through the gateway, from parsed head to last response byte."""

    __slots__ = (
        "backend",
        "body_done",
        "body_size",
        "born",
        "buffer",
        "buffered",
        "chunked",
        "client",
        "close_after",
        "deferred",
        "early",
        "error",
        "finished",
        "head",
        "method",
        "name",
        "pool",
        "queued_at",
        "response_started",
        "retried",
        "sent",
        "started",
        "status",
        "timeout",
        "timer",
        "trace",
        "upgrade",
        "upstream",
        "url",
        "waited",
    )

    def __init__(
        self,
        client: ClientProtocol,
        pool: Pool | None,
        method: bytes,
        head: bytes,
        chunked: bool,
        close_after: bool,
        url: bytes = b"/",
        trace: Trace | None = None,
    ) -> None:
        self.born = time.perf_counter()
        self.client = client
        self.pool = pool
        self.name = pool.name if pool is not None else None
        self.method = method
        self.head = head
        self.chunked = chunked
        self.close_after = close_after
        self.error: tuple[int, str] | Refusal | None = None
        self.backend: Backend | None = None
        self.retried = False
        self.upstream: Upstream | None = None
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.body_done = False
        self.body_size = 0
        self.started = False
        self.finished = False
        self.response_started = False
        self.status = 0
        self.timer: asyncio.TimerHandle | None = None
        self.url = url
        self.trace = trace or trace_of(None, None, False)
        self.queued_at = 0.0
        self.waited = 0.0  # seconds in the pool's queue
        self.sent = 0  # response bytes written to the client
        self.upgrade = False  # a WebSocket handshake
        self.deferred: list[tuple[bytes, bytes]] | None = None  # async: the client's headers
        self.timeout = 0.0  # the daemon's own requests may ask for another than the pool's
        self.early = b""  # what the client sent after its handshake, before the 101

    # lifecycle

    def start(self) -> None:
        """Called when this exchange reaches the front of its connection's line."""
        self.started = True
        pool = self.pool
        if pool is not None and pool.retired:  # the version changed while this one waited
            route = self.client.gateway.routes.get(pool.name)
            pool = self.pool = route.choose() if route is not None else None
        if self.error is not None or pool is None:
            status, message, *extra = self.error or (404, f"no function named {self.name!r}")
            self.fail(status, message, extra=extra[0] if extra else ())
            return
        if self.deferred is not None:  # stored once its body is whole, answered 202
            if self.body_done:
                self._defer()
            return
        if self.upgrade and pool.tunnels >= pool.limits.websockets:
            limit = pool.limits.websockets
            self.fail(503, f"function {pool.name!r} has {limit} WebSockets open, its limit")
            return
        self.timer = self.client.loop.call_later(
            self.timeout or pool.limits.timeout, self.timed_out
        )
        backend = pick(pool.backends)
        if backend is not None and not pool.waiters:
            self.attach(backend)
            return
        self.queued_at = time.perf_counter()
        if not pool.enqueue(self):
            self.fail(503, f"function {pool.name!r} is at capacity; retry shortly")

    def requeue(self, pool: Pool) -> None:
        """The version this request waited for stopped serving: wait for `pool` instead."""
        self.pool = pool
        backend = pick(pool.backends)
        if backend is not None:
            self.attach(backend)
        else:
            pool.enqueue(self, force=True)

    def attach(self, backend: Backend) -> None:
        if self.queued_at:
            self.waited = time.perf_counter() - self.queued_at
        backend.acquire()
        self.backend = backend
        if backend.idle:
            self.send_via(backend.idle.pop())
        else:
            self.client.gateway.background(self._connect(backend))

    async def _connect(self, backend: Backend) -> None:
        loop = self.client.loop
        try:
            _, upstream = await loop.create_unix_connection(lambda: Upstream(backend), backend.path)
        except OSError:
            if self.finished:
                return
            # Nothing was sent yet: another instance may take it (this one may have just
            # died, before its exit was seen). Once only, so a dead pool cannot loop.
            other = None
            if self.pool is not None and not self.retried:
                other = pick([b for b in self.pool.backends if b is not backend])
            if other is None:
                self.fail(502, "the function's instance is not reachable")
                return
            self.retried = True
            backend.release()
            self.attach(other)
            return
        if self.finished:
            if backend.routable:
                backend.idle.append(upstream)
            else:
                upstream.close()
            return
        self.send_via(upstream)

    def send_via(self, upstream: Upstream) -> None:
        self.upstream = upstream
        upstream.exchange = self
        upstream.reusable = True
        parts = [self.head, *self.buffer]
        self.buffer = []
        self.buffered = 0
        if self.body_done and self.chunked:
            parts.append(b"0\r\n\r\n")
        upstream.send(b"".join(parts))
        self.client.resume_reading("buffer")

    # request body from the client

    def feed_body(self, data: bytes) -> None:
        self.body_size += len(data)
        pool = self.pool
        if pool is not None and self.body_size > pool.limits.body and not self.response_started:
            limit = pool.limits.body
            self.close_after = True
            if self.started:
                self.fail(413, f"request body over the limit of {limit} bytes", close=True)
            else:
                self.error = (413, f"request body over the limit of {limit} bytes")
            return
        if self.finished or self.error is not None:
            return
        if self.deferred is not None:  # kept whole, bounded by the body limit above
            self.buffer.append(data)
            return
        if self.chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        if self.upstream is not None:
            self.upstream.send(data)
        else:
            self.buffer.append(data)
            self.buffered += len(data)
            if self.buffered > BODY_BUFFER:
                self.client.pause_reading("buffer")

    def end_body(self) -> None:
        self.body_done = True
        if self.deferred is not None:
            if self.started and not self.finished:
                self._defer()
            return
        if self.chunked and self.upstream is not None and not self.finished:
            self.upstream.send(b"0\r\n\r\n")

    # response from the instance

    def forward_response(self, data: bytes) -> None:
        if not self.response_started:
            self.response_started = True
            # The request's ids go back after the status line. (A status line split
            # across reads, which no real server writes, goes out as it came.)
            end = data.find(b"\r\n")
            if end >= 0:
                data = b"%b%b%b" % (data[: end + 2], self.trace.headers, data[end + 2 :])
        self.sent += len(data)
        self.client.write(data)

    def response_complete(self, reusable: bool) -> None:
        if not self.body_done:
            reusable = False  # the instance answered before reading the whole body
        self._release(reusable)
        self.client.exchange_done(self, close=self.close_after or not reusable)

    def _defer(self) -> None:
        """Hand the whole request to the daemon to run later; answer 202 with its id."""
        gateway, pool = self.client.gateway, self.pool
        assert self.deferred is not None and pool is not None and gateway.defer is not None
        body, self.buffer = b"".join(self.buffer), []
        request = deferred(
            pool.name, self.method, self.url, self.deferred, body, self.trace.request_id
        )
        try:
            invocation, location = gateway.defer(request)
        except Unacceptable as exc:  # the client's mistake: nothing was accepted
            self.fail(400, str(exc))
            return
        except Exception as exc:  # the store refused it: nothing was accepted
            self.fail(503, f"the invocation could not be stored: {exc}")
            return
        self.status = 202
        answer = accepted(invocation, location, self.trace.headers, self.close_after)
        self.sent += len(answer)
        self._release(False)
        self.client.write(answer)
        self.client.exchange_done(self, close=self.close_after)

    def open_tunnel(self, upstream: Upstream, rest: bytes) -> None:
        """The instance accepted the WebSocket (101): join the two connections."""
        backend, pool = self.backend, self.pool
        assert backend is not None and pool is not None
        if self.timer is not None:  # the handshake is answered; the idle limit rules now
            self.timer.cancel()
            self.timer = None
        tunnel = Tunnel(self, self.client, upstream, backend)
        backend.tunnels.add(tunnel)
        pool.tunnels += 1
        self.client.tunnel = upstream.tunnel = tunnel
        if rest:
            tunnel.from_upstream(rest)
        if self.early:
            upstream.send(self.early)
            self.early = b""
        self.client.resume_reading("upgrade")

    def tunnel_closed(self) -> None:
        self._release(False)
        self.client.exchange_done(self, close=True)

    def upstream_failed(self) -> None:
        self.fail(502, "the function's instance closed the connection mid-request")

    def instance_broken(self, reason: str) -> None:
        """The instance broke HTTP: none of it reaches the client beyond what was already
        forwarded, and the instance is replaced."""
        pool, backend = self.pool, self.backend
        if pool is not None and backend is not None and pool.on_recycle is not None:
            pool.on_recycle(pool, backend, reason)
        self.fail(502, "the function's instance sent a broken response")

    def timed_out(self) -> None:
        self.timer = None
        if self.finished:
            return
        if not self.body_done and not self.client.paused:
            # The gateway is reading and the client is not sending: the client is slow,
            # not the function. Nothing to recycle.
            self.fail(408, "the request body did not arrive in time", close=True)
            return
        pool, backend = self.pool, self.backend
        timeout = pool.limits.timeout if pool is not None else 0
        if (
            not self.response_started
            and pool is not None
            and backend is not None
            and pool.on_recycle is not None
        ):  # a handler stuck past its timeout: recycle it
            pool.on_recycle(pool, backend, f"held a request past the {timeout:g}s timeout")
        self.fail(504, f"the function did not answer within {timeout:g}s")

    def fail(self, status: int, message: str, close: bool = False, extra: Headers = ()) -> None:
        """End this exchange with an error answer, or by closing if its response began."""
        if self.finished:
            return
        if self.response_started:  # too late for an error page: end the connection
            self._release(False)
            self.client.exchange_done(self, close=True)
            return
        close = close or self.close_after or not self.body_done
        self.status = status
        trace = self.trace
        ids = (
            ("x-request-id", trace.request_id.decode("latin-1")),
            ("traceparent", trace.traceparent.decode()),
        )
        answer = error_response(status, message, self.name, close, (*extra, *ids))
        self.sent += len(answer)
        self._release(False)
        self.client.write(answer)
        self.client.exchange_done(self, close=close, linger=not self.body_done)

    def client_lost(self) -> None:
        if not self.response_started and not self.finished:
            self.status = CLIENT_GONE
        self._release(False)

    def _release(self, reusable: bool) -> None:
        if self.finished:
            return
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        upstream, self.upstream = self.upstream, None
        backend, self.backend = self.backend, None
        self._account(backend)
        if upstream is not None:
            upstream.exchange = None
            if reusable and backend is not None and backend.routable:
                backend.idle.append(upstream)
            else:
                upstream.close()
        if backend is not None:
            backend.release()
            if self.pool is not None and backend.routable:
                self.pool.dispatch()
        elif self.pool is not None and self.started:
            self.pool.dequeue(self)

    def _account(self, backend: Backend | None) -> None:
        """Count the finished request in its version's meter and keep it for the log."""
        pool = self.pool
        gateway = self.client.gateway
        if pool is None:
            gateway.unrouted += 1
            return
        if self.queued_at and not self.waited:  # it left the queue without an instance
            self.waited = time.perf_counter() - self.queued_at
        took = time.perf_counter() - self.born
        if gateway.metering:
            pool.meter.record(self.status, took, self.waited, self.body_size, self.sent)
        if not gateway.keeping:
            return
        records = gateway.records
        if len(records) < MAX_RECORDS:
            trace = self.trace
            records.append(  # a Finished, as a plain tuple
                (
                    time.time(),
                    took,
                    self.waited,
                    self.status,
                    self.body_size,
                    self.sent,
                    self.method,
                    self.url,
                    trace.request_id,
                    trace.trace,
                    trace.span,
                    trace.parent,
                    trace.flags,
                    backend.id if backend is not None else None,
                    self.client.peer,
                    pool.name,
                    pool.version,
                )
            )
        else:
            gateway.dropped += 1


class Refused(Exception):
    """Raised from a parser callback: the request is refused with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Closed(Exception):
    """Raised from a parser callback: the connection is closing, parse nothing more."""


class ClientProtocol(asyncio.Protocol):
    """One client connection: parse requests, run their exchanges in order.

    Deadlines are not timers: the request path stamps times, and the gateway's sweep
    (`check_deadlines`, once a second) ends connections that overstay.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.config = gateway.config
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = b""
        self.line: deque[Exchange] = deque()
        self.current: Exchange | None = None  # the exchange whose body is being read
        self.paused: set[str] = set()
        self.closing = False
        self.idle_since: float | None = None  # None while a request is being served
        self.last_read = 0.0
        self.in_head = False  # between a request's first byte and the end of its headers
        self.head_started = 0.0
        self.head_received = 0
        self._head_bytes = 0
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self.tunnel: Tunnel | None = None  # an open WebSocket: bytes pass through

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0] if isinstance(peer, tuple) else "127.0.0.1").encode()
        self.gateway.connections.add(self)
        self.idle_since = self.last_read = self.loop.time()
        counts = self.gateway.per_client
        counts[self.peer] += 1
        if counts[self.peer] > self.config.max_per_client:
            self.closing = True
            limit = self.config.max_per_client
            message = f"over {limit} open connections from your address"
            self.write(error_response(503, message, close=True))
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.from_client(data)
            return
        if self.closing:
            return
        self.last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if isinstance(refused, Refused):
                self._reject(refused.status, refused.message)
            elif not isinstance(refused, Closed):
                raise
        except httptools.HttpParserUpgrade as exc:
            if self.closing:  # the handshake is answered already (refused), and closes
                return
            handshake = self.line[-1] if self.line else None
            if handshake is None or not handshake.upgrade or handshake.finished:
                self._reject(501, "protocol upgrades other than WebSocket are not supported")
                return
            # Nothing more is parsed here: the bytes after the handshake are the client's
            # first frames, for the instance once it accepts (or dropped with the close).
            handshake.early = data[exc.args[0] :]
            self.pause_reading("upgrade")
        except httptools.HttpParserError as exc:
            if not self.closing:  # else: bytes after a request that ended the connection
                self._reject(400, f"malformed HTTP request: {exc}")
        else:
            if self.in_head:
                # httptools keeps a header split across reads by copying it whole on every
                # read: bound the head before that cost grows.
                self.head_received += len(data)
                if self.head_received > self.config.max_head:
                    self._reject(431, self._too_large())
                return
            current = self.current
            if (
                current is not None
                and current.error is not None
                and not current.started
                and self.line
                and self.line[0] is current
            ):
                current.start()  # a known answer goes out now, not after an unneeded body

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.transport = None
        if self.tunnel is not None:
            self.tunnel.close()
        if self in self.gateway.connections:
            self.gateway.connections.discard(self)
            counts = self.gateway.per_client
            counts[self.peer] -= 1
            if counts[self.peer] <= 0:
                del counts[self.peer]
        for exchange in self.line:
            exchange.client_lost()
        self.line.clear()

    def pause_writing(self) -> None:
        if self.line and self.line[0].upstream is not None:
            transport = self.line[0].upstream.transport
            if transport is not None:
                transport.pause_reading()

    def resume_writing(self) -> None:
        if self.line and self.line[0].upstream is not None:
            transport = self.line[0].upstream.transport
            if transport is not None:
                transport.resume_reading()

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.closing:  # closed by an earlier request in this same read
            raise Closed
        self.in_head = True
        self.head_started = self.last_read
        self.head_received = 0
        self._head_bytes = 0
        self._url = b""
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.config.max_url:
            raise Refused(
                414, f"the request target is over the limit of {self.config.max_url} bytes"
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._head_bytes += len(name) + len(value) + 4
        if len(self._headers) > self.config.max_headers:
            raise Refused(431, f"more than {self.config.max_headers} header fields")
        if self._head_bytes + len(self._url) > self.config.max_head:
            raise Refused(431, self._too_large())

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.idle_since = None
        parser = self.parser
        method = parser.get_method()
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise Refused(505, f"HTTP/{version} is not supported: use HTTP/1.1")
        url = self._url
        host: bytes | None = None
        chunked = False
        length = -1
        request_id: bytes | None = None
        traceparent: bytes | None = None
        internal = False
        upgrade: bytes | None = None
        later = False
        timeout = b""
        vouched: list[bytes] | None = None
        parts = [b"%b %b HTTP/%b\r\n" % (method, url, version.encode())]
        for hname, value in self._headers:
            lname = hname.lower()
            if lname in DROP:
                if lname == b"x-request-id":
                    request_id = value
                elif lname == b"traceparent":
                    traceparent = value
                elif lname == b"x-hearth-internal":
                    internal = hmac.compare_digest(value, self.gateway.internal)
                elif lname == b"upgrade":
                    upgrade = value
                elif lname == b"x-hearth-async":
                    later = value.strip().lower() in (b"1", b"true")
                elif lname == b"x-hearth-timeout":
                    timeout = value
                elif lname in DAEMON_ONLY:
                    vouched = vouched or []
                    vouched.append(b"%b: %b\r\n" % (hname, value))
                continue
            if lname == b"host":
                if host is not None:
                    raise Refused(400, "more than one Host header")
                host = value
            elif lname == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif lname == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            parts.append(b"%b: %b\r\n" % (hname, value))
        if vouched is not None and internal:
            parts += vouched
        host = host or b""
        gateway = self.gateway
        name, by_path = route_name(host, url, gateway.domain)
        route = gateway.routes.get(name) if name else None
        prefix = b""
        if route is not None and by_path:
            prefix = route.prefix
            if url == prefix or url.startswith(prefix + b"?"):  # /fn/name -> /fn/name/
                parts[0] = b"%b %b/%b HTTP/%b\r\n" % (
                    method,
                    prefix,
                    url[len(prefix) :],
                    version.encode(),
                )
        parts.append(
            b"x-forwarded-for: %b\r\nx-forwarded-proto: http\r\nx-forwarded-host: %b\r\n"
            % (self.peer, host)
        )
        if prefix:
            parts.append(b"x-forwarded-prefix: %b\r\n" % prefix)
        trace = trace_of(request_id, traceparent, gateway.sampled)
        parts.append(trace.headers)
        keep_alive = parser.should_keep_alive()
        websocket = (
            upgrade is not None and upgrade.lower() == b"websocket" and parser.should_upgrade()
        )
        if websocket:
            parts.append(b"upgrade: websocket\r\nconnection: Upgrade\r\n")
        elif version == "1.0" and keep_alive:
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        pool = route.choose() if route is not None else None
        exchange = Exchange(
            self, pool, method, b"".join(parts), chunked, not keep_alive or websocket, url, trace
        )
        exchange.upgrade = websocket
        if pool is None:
            shown = name if name else url.decode("latin-1")
            exchange.error = (
                404,
                f"no function named {name!r}" if name else f"no route for {shown}",
            )
            exchange.name = name
        elif length > pool.limits.body:
            exchange.error = (413, f"request body over the limit of {pool.limits.body} bytes")
            exchange.close_after = True  # answer at once, without reading the body
        if route is not None and exchange.error is None and not internal:
            exchange.error = route.access.admit(exchange, self._headers)  # 401, 429
        if internal and timeout:
            exchange.timeout = _seconds(timeout)
        if later and exchange.error is None:
            if gateway.defer is None:
                exchange.error = (501, "asynchronous invocations are not enabled here")
            elif websocket:
                exchange.error = (400, "a WebSocket cannot be invoked asynchronously")
            else:
                exchange.deferred = self._headers
        self.current = exchange
        self.line.append(exchange)
        if len(self.line) > 1:
            self.pause_reading("pipeline")
        elif exchange.error is None or exchange.close_after:
            exchange.start()
        # else: an error known now is sent once this read is parsed, with the body if it
        # came along (the connection stays open), without it otherwise (then it closes)

    def on_body(self, body: bytes) -> None:
        if self.current is not None:
            self.current.feed_body(body)

    def on_message_complete(self) -> None:
        current, self.current = self.current, None
        if current is not None:
            current.end_body()
            if not current.started and self.line and self.line[0] is current:
                current.start()

    # used by exchanges and the gateway

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def exchange_done(self, exchange: Exchange, close: bool, linger: bool = False) -> None:
        if self.line and self.line[0] is exchange:
            self.line.popleft()
        if close:
            self._close(linger)
            return
        if self.line:
            self.line[0].start()
        else:
            self.resume_reading("pipeline")
            self.idle_since = self.loop.time()

    def check_deadlines(self, now: float) -> None:
        """End a connection whose headers, body or next request are overdue."""
        tunnel = self.tunnel
        if tunnel is not None:
            pool = tunnel.exchange.pool
            if pool is not None and now - tunnel.last > pool.limits.websocket_idle:
                tunnel.close(GOING_AWAY)
            return
        if self.closing:
            return
        config = self.config
        if self.in_head:
            if now - self.head_started > config.header_timeout:
                self._reject(
                    408, f"the request headers did not arrive within {config.header_timeout:g}s"
                )
        elif self.current is not None:
            if not self.paused and now - self.last_read > config.body_timeout:
                self._reject(
                    408, f"the request body stalled for more than {config.body_timeout:g}s"
                )
        elif (
            self.idle_since is not None
            and not self.line
            and now - self.idle_since > config.keepalive
        ):
            self._close()

    def pause_reading(self, reason: str) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused.add(reason)

    def resume_reading(self, reason: str) -> None:
        if reason in self.paused:
            self.paused.discard(reason)
            if not self.paused and self.transport is not None:
                self.transport.resume_reading()
                self.last_read = self.loop.time()  # the body deadline counts from here

    def _too_large(self) -> str:
        return f"the request headers are over the limit of {self.config.max_head} bytes"

    def _reject(self, status: int, message: str) -> None:
        """Refuse what the client sent: answer (after what is in flight), then close."""
        self.closing = True  # read nothing more from this client
        current, self.current = self.current, None
        if current is not None and not current.finished:  # its body was being read
            current.error = (status, message)
            current.close_after = True
            if current.started:
                current.fail(status, message, close=True)
            elif self.line and self.line[0] is current:
                current.start()
            return  # else it answers when it reaches the front of the line
        if self.line:
            self.line[-1].close_after = True
            return
        self.write(error_response(status, message, close=True))
        self._close(linger=True)

    def _close(self, linger: bool = False) -> None:
        """Close; with `linger`, the client may still be sending: half-close so the answer
        is delivered, and drop what it sends for a moment (closing with unread input would
        reset the connection and could destroy the answer in flight)."""
        self.closing = True
        transport = self.transport
        if transport is not None:
            if linger and transport.can_write_eof():
                transport.write_eof()
                self.paused.clear()
                transport.resume_reading()
                self.loop.call_later(LINGER, transport.close)
            else:
                transport.close()
        for exchange in self.line:
            exchange.client_lost()
        self.line.clear()


def _seconds(text: bytes) -> float:
    """A timeout the daemon asked for (x-hearth-timeout), within a day; 0: the pool's."""
    try:
        seconds = float(text)
    except ValueError:
        return 0.0
    return seconds if 0 < seconds <= 86400 else 0.0
