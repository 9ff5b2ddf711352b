"""An asynchronous invocation as stored, and as the API and callbacks show it."""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal

# 128 random bits, url-safe: unguessable, so the id alone may read the invocation.
ID = re.compile(r"[A-Za-z0-9_-]{22}")
Status = Literal["queued", "running", "done", "failed"]
STATUSES: tuple[Status, ...] = ("queued", "running", "done", "failed")
MAX_RESULT = 1024**2  # bytes of a response body kept; the rest is cut off, and said so


def new_id() -> str:
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Request:
    """What is replayed: the request as the gateway accepted it."""

    id: str
    function: str
    method: str
    url: str  # the request target as sent: /fn/NAME/... or, routed by host, /...
    headers: list[tuple[str, str]]  # Host kept, so routing by host works again
    body: bytes
    request_id: str
    attempts: int  # including the one about to run
    created: float
    callback: str | None = None


@dataclass(frozen=True)
class Result:
    """A response the function gave (the last one, for a failed invocation)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    truncated: bool  # the body was longer than MAX_RESULT


@dataclass(frozen=True)
class Invocation:
    id: str
    function: str
    status: Status
    method: str
    url: str
    request_id: str
    attempts: int
    created: float
    updated: float
    next_try: float | None  # when queued: not before this
    last_error: str | None
    callback: str | None
    callback_state: str | None  # pending, delivered or failed; None until it is due
    result_status: int | None
    result: Result | None  # None in lists, and until finished

    def describe(self) -> dict[str, Any]:
        """The answer of GET /v1/invocations/ID, and what a callback is sent."""
        shown: dict[str, Any] = {
            "id": self.id,
            "function": self.function,
            "status": self.status,
            "method": self.method,
            "url": self.url,
            "request_id": self.request_id,
            "attempts": self.attempts,
            "created": self.created,
            "updated": self.updated,
            "next_try": self.next_try if self.status == "queued" else None,
            "last_error": self.last_error,
            "callback": (
                {"url": self.callback, "state": self.callback_state} if self.callback else None
            ),
        }
        if self.result is None:
            shown["result"] = None
            return shown
        text, encoded = body_text(self.result.body)
        shown["result"] = {
            "status": self.result.status,
            "headers": [[name, value] for name, value in self.result.headers],
            "body": text,
            "base64": encoded,
            "truncated": self.result.truncated,
        }
        return shown

    def brief(self) -> dict[str, Any]:
        """A line of a list: no body, no headers."""
        shown = self.describe()
        shown.pop("result")
        shown["result_status"] = self.result_status
        return shown


def body_text(body: bytes) -> tuple[str, bool]:
    """The body as text when it is UTF-8, else in base64 (and True)."""
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True
