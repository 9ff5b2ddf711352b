"""A request's identity across the platform: `X-Request-Id` and a W3C `traceparent`.

The gateway keeps a request id the client sent (if it is sane) and continues a trace the
client started; otherwise it starts both. It is the parent of the function's work: the
traceparent it forwards names the gateway's own span. Pure functions on bytes.
"""

from __future__ import annotations

import random
import re

_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,200}")
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16


class Trace:
    """The ids of one request; `headers` is what the function and the client are given."""

    __slots__ = ("flags", "headers", "parent", "request_id", "span", "trace")

    def __init__(
        self, request_id: bytes, trace: bytes, span: bytes, parent: bytes, flags: bytes
    ) -> None:
        self.request_id = request_id
        self.trace = trace  # 32 hex digits
        self.span = span  # the gateway's span: 16 hex digits
        self.parent = parent  # the caller's span (b"": the trace starts here)
        self.flags = flags
        # As the function is sent them and the client gets them back: made once.
        self.headers = b"x-request-id: %b\r\ntraceparent: 00-%b-%b-%b\r\n" % (
            request_id,
            trace,
            span,
            flags,
        )

    @property
    def traceparent(self) -> bytes:
        return b"00-%b-%b-%b" % (self.trace, self.span, self.flags)


def trace_of(request_id: bytes | None, traceparent: bytes | None, sampled: bool) -> Trace:
    """The request's ids from what the client sent (either may be None or malformed)."""
    trace = parent = b""
    flags = b"01" if sampled else b"00"
    if traceparent is not None:
        match = _TRACEPARENT.fullmatch(traceparent.strip().lower())
        if match and match[1] != _ZERO_TRACE and match[2] != _ZERO_SPAN:
            trace, parent, flags = match[1], match[2], match[3]
    if not trace:
        trace = b"%032x" % random.getrandbits(128)
    span = b"%016x" % random.getrandbits(64)
    if request_id is None or not _REQUEST_ID.fullmatch(request_id):
        request_id = trace
    return Trace(request_id, trace, span, parent, flags)
