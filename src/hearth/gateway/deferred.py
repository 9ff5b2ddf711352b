"""Asynchronous invocations as the gateway sees them: a request marked `X-Hearth-Async: 1`
is read whole (within the function's body limit), handed to the daemon to be stored, and
answered 202 with where its result will be. The gateway never runs it: the daemon replays
it later through the gateway, as one of its own requests (`x-hearth-internal`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import NamedTuple


class Deferred(NamedTuple):
    """A request to run later, as the client sent it (minus hop-by-hop headers and the
    function's key, which is checked now and never stored)."""

    function: str
    method: str
    url: str  # the request target, as sent (path and query)
    headers: list[tuple[str, str]]
    body: bytes
    request_id: str


class Unacceptable(ValueError):
    """The request cannot be taken as sent (an X-Callback-Url that is not http or https,
    say): the client gets 400 with this message, and nothing is stored. Any other error of
    `Defer` is the store's, and a 503."""


# Stores it (durably, before the 202 goes out) and says (id, where to read the result).
Defer = Callable[[Deferred], tuple[str, str]]
KEPT_OUT = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"transfer-encoding",  # the body is stored whole: its length is known
        b"content-length",
        b"authorization",  # a private function's key: checked now, never stored
        b"x-hearth-async",
        b"x-hearth-internal",
        b"x-hearth-timeout",
    }
)


def deferred(
    function: str,
    method: bytes,
    url: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    request_id: bytes,
) -> Deferred:
    kept = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in headers
        if name.lower() not in KEPT_OUT
    ]
    return Deferred(
        function,
        method.decode("ascii"),
        url.decode("latin-1"),
        kept,
        body,
        request_id.decode("latin-1"),
    )


def accepted(invocation: str, location: str, trace: bytes, close: bool) -> bytes:
    """The 202 answer: the invocation's id, and where its status and result are read."""
    payload = json.dumps({"id": invocation, "status": "queued", "location": location}).encode()
    head = (
        b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nlocation: %b\r\nx-hearth-invocation-id: %b\r\n%bserver: hearth\r\n"
        % (len(payload), location.encode("latin-1"), invocation.encode("latin-1"), trace)
    )
    if close:
        head += b"connection: close\r\n"
    return head + b"\r\n" + payload
