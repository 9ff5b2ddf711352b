"""Request ids, traceparent and the meter, on raw bytes through the gateway."""

import re

from hearth.gateway.meter import CLIENT_GONE, Finished
from hearth.gateway.routes import RouteLimits
from tests.gateway.fakes import OK, Setup

TRACEPARENT = re.compile(rb"traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\r\n")
REQUEST_ID = re.compile(rb"x-request-id: ([^\r\n]*)\r\n")


def ids(data):
    request_id = REQUEST_ID.search(data)
    trace = TRACEPARENT.search(data)
    assert request_id and trace, data
    return request_id[1], trace[1], trace[2], trace[3]


async def test_a_request_without_ids_gets_new_ones_there_and_back(setup):
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    request_id, trace, span, flags = ids(setup.upstreams[0].transport.take_raw())
    assert request_id == trace  # the request id is the trace id when the client sent none
    assert trace != b"0" * 32 and span != b"0" * 16
    assert flags == b"00"  # nothing is exported: not sampled
    setup.reply(OK)
    answer = setup.transport.take_raw()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\nx-request-id: ")  # right after the status line
    assert ids(answer) == (request_id, trace, span, flags)
    assert answer.endswith(b"content-length: 2\r\n\r\nok")


async def test_the_clients_ids_are_kept_and_its_trace_continued(setup):
    parent = b"00f067aa0ba902b7"
    trace = b"4bf92f3577b34da6a3ce929d0e0e4736"
    setup.send(
        b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc-123\r\n"
        b"traceparent: 00-" + trace + b"-" + parent + b"-01\r\n\r\n"
    )
    head = setup.upstreams[0].transport.take_raw()
    request_id, got_trace, span, flags = ids(head)
    assert (request_id, got_trace, flags) == (b"abc-123", trace, b"01")
    assert span != parent  # the gateway's own span, child of the client's
    assert head.count(b"traceparent") == 1 and head.lower().count(b"x-request-id") == 1
    setup.reply(OK)
    assert ids(setup.transport.take_raw()) == (b"abc-123", trace, span, b"01")


async def test_malformed_ids_are_replaced(setup):
    setup.send(
        b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Request-Id: " + b"a" * 201 + b"\r\n"
        b"traceparent: 00-" + b"0" * 32 + b"-00f067aa0ba902b7-01\r\n\r\n"
    )
    request_id, trace, _, flags = ids(setup.upstreams[0].transport.take_raw())
    assert request_id == trace and trace != b"0" * 32 and flags == b"00"


async def test_the_gateways_own_answers_carry_the_ids(setup):
    setup.send(b"GET /fn/nobody/ HTTP/1.1\r\nHost: x\r\nX-Request-Id: lost-1\r\n\r\n")
    answer = setup.transport.take_raw()
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert ids(answer)[0] == b"lost-1"
    assert setup.gateway.unrouted == 1


async def test_the_meter_counts_answers_by_class_with_durations(setup):
    setup.send(b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    setup.upstreams[0].transport.take_raw()
    setup.reply(OK)
    meter = setup.pool.meter
    assert meter.codes[2] == 1 and meter.requests == 1
    assert meter.bytes_in == 3 and meter.bytes_out == len(setup.transport.take_raw())
    assert sum(meter.duration) == 1 and sum(meter.wait) == 1
    [raw] = setup.gateway.take_records()
    record = Finished._make(raw)
    assert (record.instance, record.status, record.into, record.function) == (
        "hello@1#1",
        200,
        3,
        "hello",
    )
    assert record.method == b"POST" and record.out == meter.bytes_out
    assert setup.gateway.take_records() == []


async def test_refusals_and_clients_that_leave_are_counted():
    setup = Setup(limits=RouteLimits(queue=0), concurrency=1)
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")  # takes the only slot
    other = setup.client.__class__(setup.gateway)
    from tests.gateway.fakes import FakeTransport

    other.connection_made(FakeTransport())
    other.data_received(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")  # no slot, no queue
    assert setup.pool.meter.codes[5] == 1  # 503
    setup.client.connection_lost(None)  # the first client leaves before its answer
    assert setup.pool.meter.codes[4] == 1
    statuses = sorted(Finished._make(r).status for r in setup.gateway.take_records())
    assert statuses == [CLIENT_GONE, 503]


async def test_counting_and_keeping_can_be_turned_off(setup):
    setup.gateway.metering = False
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    setup.upstreams[0].transport.take_raw()
    setup.reply(OK)
    assert setup.pool.meter.requests == 0 and len(setup.gateway.take_records()) == 1
    assert setup.transport.take() == OK  # the ids are still given
    setup.gateway.metering, setup.gateway.keeping = True, False
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    setup.upstreams[0].transport.take_raw()
    setup.reply(OK)
    assert setup.pool.meter.requests == 1 and setup.gateway.take_records() == []
