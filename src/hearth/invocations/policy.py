"""The decisions about asynchronous invocations, pure: what an attempt's answer means, what
happens next, how long to wait before the next try, how many may run at once, and which
callback URLs are taken."""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Literal
from urllib.parse import urlsplit

from hearth.spec import FunctionSpec

Verdict = Literal["done", "retry", "failed"]
Next = Literal["done", "queued", "failed"]
BACKOFF_CAP = 300.0  # seconds: the longest wait between two attempts
JITTER = 0.2  # each wait is drawn within +-20% of its nominal value (never past the cap)
MAX_CALLBACK_URL = 2048
ERROR_EXCERPT = 300  # characters of a failed answer's body kept in `last_error`


def judge(status: int | None) -> Verdict:
    """What an attempt's answer means; None: there was none (timeout, connection lost).

    A 5xx, a 429 or no answer may pass (an instance that crashed, a full queue, a rate
    limit): try again. Any other 4xx is the request's own fault and will not change with
    another try. Anything below 400 is an answer the function meant to give.
    """
    if status is None or status == 429 or status >= 500:
        return "retry"
    if status >= 400:
        return "failed"
    return "done"


def after(verdict: Verdict, attempts: int, retries: int) -> Next:
    """Where an invocation goes after attempt number `attempts` (1 is the first)."""
    if verdict == "retry":
        return "queued" if attempts <= retries else "failed"
    return verdict


def backoff(attempt: int, base: float = 1.0, draw: float = 0.5) -> float:
    """Seconds to wait after failed attempt number `attempt`: base, 2 x base, 4 x base...
    at most BACKOFF_CAP; `draw` (in [0, 1)) spreads retries that failed together."""
    nominal = min(BACKOFF_CAP, base * 2.0 ** min(max(attempt, 1) - 1, 64))
    return min(BACKOFF_CAP, nominal * (1 - JITTER + 2 * JITTER * draw))


def slots(spec: FunctionSpec) -> int:
    """How many of the function's invocations may run at once: `[async] share` of its
    capacity (`max` instances x `concurrency`), at least one."""
    capacity = spec.scale.max * spec.scale.concurrency
    return max(1, math.floor(spec.background.share * capacity))


def callback_problem(url: str) -> str | None:
    """Why `url` (from X-Callback-Url) cannot be called back; None if it can."""
    shown = repr(url[:80]) + ("..." if len(url) > 80 else "")
    if len(url) > MAX_CALLBACK_URL:
        return f"X-Callback-Url is over {MAX_CALLBACK_URL} characters"
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return f"X-Callback-Url {shown} holds spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not one)
    except ValueError:
        return f"X-Callback-Url {shown} is not a URL"
    if parts.scheme.lower() not in ("http", "https"):
        return f"X-Callback-Url {shown}: only http:// and https:// URLs are called back"
    if not parts.hostname:
        return f"X-Callback-Url {shown} names no host"
    return None


def failure(status: int, body: bytes) -> str:
    """`last_error` for an answer that is not a success: its status and what it said."""
    said = " ".join(body[: ERROR_EXCERPT * 4].decode("utf-8", "replace").split())
    if len(said) > ERROR_EXCERPT:
        said = said[:ERROR_EXCERPT] + "..."
    try:
        head = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        head = str(status)
    return f"{head}: {said}" if said else head
