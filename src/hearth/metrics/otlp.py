"""Spans to an OpenTelemetry collector (OTLP over HTTP), one per request, made from the
finished requests the monitor takes from the gateway once a second; the SDK batches and
sends them from its own thread. The span's ids are the ones the gateway already gave the
request (its traceparent), so the function's own spans hang under it."""

from __future__ import annotations

from collections.abc import Sequence

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

from hearth.gateway.meter import Finished


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

    def export(self, records: Sequence[Finished]) -> None:
        for r in records:
            flags = int(r.flags, 16)
            if not flags & 1:
                continue  # not sampled: the caller decided so
            trace_id = int(r.trace, 16)
            context = None
            if r.parent:
                parent = SpanContext(trace_id, int(r.parent, 16), True, TraceFlags(flags))
                context = set_span_in_context(NonRecordingSpan(parent))
            self.ids.trace_id, self.ids.span_id = trace_id, int(r.span, 16)
            method = r.method.decode("latin-1")
            span = self.tracer.start_span(
                f"{method} {r.function}",
                context=context,
                kind=SpanKind.SERVER,
                start_time=int((r.at - r.took) * 1e9),
                attributes={
                    "http.request.method": method,
                    "url.path": r.url.decode("latin-1"),
                    "http.response.status_code": r.status,
                    "client.address": r.client.decode("latin-1"),
                    "hearth.request_id": r.request_id.decode("latin-1"),
                    "hearth.function": r.function,
                    "hearth.version": r.version,
                    "hearth.instance": r.instance or "",
                    "hearth.queue_wait_ms": round(r.waited * 1000, 3),
                    "hearth.upstream_ms": round((r.took - r.waited) * 1000, 3),
                },
            )
            if r.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=int(r.at * 1e9))

    def close(self) -> None:
        self.provider.shutdown()
