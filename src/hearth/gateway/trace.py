"""A request's identity across the platform: `X-Request-Id` and a W3C `traceparent`.

The gateway keeps a request id the client sent (if it is sane) and continues a trace the
client started; otherwise it starts both. It is the parent of the function's work: the
traceparent it forwards names the gateway's own span. Pure functions on bytes.
"""

from __future__ import annotations

import random
import re
from typing import NamedTuple

_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,200}")
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16


class Trace(NamedTuple):
    """The ids of one request; `headers` is what the function and the client are given.
    A tuple of bytes: kept for the access log, it costs the garbage collector nothing."""

    request_id: bytes
    trace: bytes  # 32 hex digits
    span: bytes  # the gateway's span: 16 hex digits
    parent: bytes  # the caller's span (b"": the trace starts here)
    flags: bytes
    headers: bytes  # "x-request-id: ...\r\ntraceparent: ...\r\n", made once

    @property
    def traceparent(self) -> bytes:
        return b"00-%b-%b-%b" % (self.trace, self.span, self.flags)


def trace_of(request_id: bytes | None, traceparent: bytes | None, sampled: bool) -> Trace:
    """The request's ids from what the client sent (either may be None or malformed)."""
    ids = b"%048x" % random.getrandbits(192)  # a trace id and a span id, in one draw
    trace, span = ids[:32], ids[32:]
    parent = b""
    flags = b"01" if sampled else b"00"
    if traceparent is not None:
        match = _TRACEPARENT.fullmatch(traceparent.strip().lower())
        if match and match[1] != _ZERO_TRACE and match[2] != _ZERO_SPAN:
            trace, parent, flags = match[1], match[2], match[3]
    if request_id is None or not _REQUEST_ID.fullmatch(request_id):
        request_id = trace
    headers = b"x-request-id: %b\r\ntraceparent: 00-%b-%b-%b\r\n" % (
        request_id,
        trace,
        span,
        flags,
    )
    return _new(Trace, (request_id, trace, span, parent, flags, headers))


_new = tuple.__new__  # a NamedTuple without its keyword-checking constructor: cheaper
