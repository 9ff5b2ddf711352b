"""Spans to an OpenTelemetry collector (OTLP over HTTP), one per request, made from the
finished requests the monitor takes from the gateway once a second; the SDK batches and
sends them from its own thread. The span's ids are the ones the gateway already gave the
request (its traceparent), so the function's own spans hang under it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

if TYPE_CHECKING:
    from hearth.gateway.proxy import Exchange


class _Given(IdGenerator):
    """Ids decided before the span starts: the gateway chose them with the request."""

    trace_id = 0
    span_id = 0

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        return self.span_id


class SpanExport:
    def __init__(self, endpoint: str) -> None:
        url = endpoint.rstrip("/")
        if not url.endswith("/v1/traces"):
            url += "/v1/traces"
        self.ids = _Given()
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": "hearth-gateway"}), id_generator=self.ids
        )
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
        self.tracer = self.provider.get_tracer("hearth.gateway")

    def export(self, records: Sequence[tuple[float, float, str | None, Exchange]]) -> None:
        for at, took, instance, exchange in records:
            trace = exchange.trace
            pool = exchange.pool
            if not int(trace.flags, 16) & 1 or pool is None:
                continue  # not sampled: the caller decided so
            trace_id = int(trace.trace, 16)
            context = None
            if trace.parent:
                parent = SpanContext(
                    trace_id, int(trace.parent, 16), True, TraceFlags(int(trace.flags, 16))
                )
                context = set_span_in_context(NonRecordingSpan(parent))
            self.ids.trace_id, self.ids.span_id = trace_id, int(trace.span, 16)
            span = self.tracer.start_span(
                f"{exchange.method.decode('latin-1')} {pool.name}",
                context=context,
                kind=SpanKind.SERVER,
                start_time=int((at - took) * 1e9),
                attributes={
                    "http.request.method": exchange.method.decode("latin-1"),
                    "url.path": exchange.url.decode("latin-1"),
                    "http.response.status_code": exchange.status,
                    "client.address": exchange.client.peer.decode("latin-1"),
                    "hearth.request_id": trace.request_id.decode("latin-1"),
                    "hearth.function": pool.name,
                    "hearth.version": pool.version,
                    "hearth.instance": instance or "",
                    "hearth.queue_wait_ms": round(exchange.waited * 1000, 3),
                    "hearth.upstream_ms": round((took - exchange.waited) * 1000, 3),
                },
            )
            if exchange.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=int(at * 1e9))

    def close(self) -> None:
        self.provider.shutdown()
