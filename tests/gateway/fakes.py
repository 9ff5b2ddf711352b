"""Fakes for protocol tests: mock transports on both sides of the gateway, no sockets."""

import json
import re

from hearth.gateway import Backend, Gateway, Pool
from hearth.gateway.proxy import ClientProtocol
from hearth.gateway.routes import RouteLimits
from hearth.gateway.upstream import Upstream

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
# The ids the gateway adds to every answer (tested in test_trace.py; taken out elsewhere).
IDS = re.compile(rb"x-request-id: [^\r\n]*\r\ntraceparent: [^\r\n]*\r\n")


class FakeTransport:
    def __init__(self, peer=("10.1.2.3", 5555), eof=False):
        self.written = bytearray()
        self.eof = eof  # supports half-close (TCP)
        self.eof_written = False
        self.closed = False
        self.reading = True
        self.peer = peer

    def write(self, data):
        self.written += data

    def close(self):
        self.closed = True

    def can_write_eof(self):
        return self.eof

    def write_eof(self):
        self.eof_written = True

    def pause_reading(self):
        self.reading = False

    def resume_reading(self):
        self.reading = True

    def get_extra_info(self, name, default=None):
        return self.peer if name == "peername" else default

    def take(self):
        """What the client was sent, without the request ids the gateway adds."""
        return IDS.sub(b"", self.take_raw())

    def take_raw(self):
        data, self.written = bytes(self.written), bytearray()
        return data


class Setup:
    def __init__(self, limits=None, upstreams=1, concurrency=4, config=None):
        self.gateway = Gateway("localhost", config)
        self.demands = 0
        self.pool = Pool("hello", 1, limits or RouteLimits(), on_demand=self._demand)
        self.gateway.set_pools("hello", [self.pool])
        self.backend = Backend("hello@1#1", "/nonexistent.sock", concurrency)
        self.upstreams = []
        for _ in range(upstreams):
            upstream = Upstream(self.backend)
            upstream.connection_made(FakeTransport())
            self.backend.idle.append(upstream)
            self.upstreams.append(upstream)
        self.pool.add(self.backend)
        self.client = ClientProtocol(self.gateway)
        self.transport = FakeTransport()
        self.client.connection_made(self.transport)

    def _demand(self, route):
        self.demands += 1

    def send(self, data):
        self.client.data_received(data)

    def upstream_got(self, n=0):
        return self.upstreams[n].transport.take()

    def reply(self, data, n=0):
        self.upstreams[n].data_received(data)


def error_body(data):
    head, _, body = data.partition(b"\r\n\r\n")
    return head, json.loads(body)


def later(s, seconds):
    """A sweep as if `seconds` had passed: deadlines without sleeping."""
    s.gateway.sweep(s.client.loop.time() + seconds)
