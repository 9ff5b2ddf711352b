"""Who may call a function, and how often: the gateway's decision for each request.

A private function answers only requests that carry one of its keys (`Authorization:
Bearer <key>`), and never sees that header. A function with a rate takes each request from
a token bucket. `check` is the decision, with the time passed in; `Access` holds what it
reads, one per route, and the daemon changes it in place when keys or settings change:
nothing on the request path reads SQLite.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from hearth.units import format_rate

if TYPE_CHECKING:
    from hearth.gateway.proxy import Exchange

Headers = tuple[tuple[str, str], ...]
Refusal = tuple[int, str, Headers]
CHALLENGE: Headers = (("www-authenticate", "Bearer"),)
_AUTHORIZATION = b"authorization:"


class TokenBucket:
    """`rate` requests a second on average; at most `burst` at once.

    The burst is one second's worth of requests (at least one): a client may send a
    second's share at once, then is held to the rate.
    """

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.burst = max(1.0, rate)
        self.tokens = self.burst
        self.stamp = now

    def __repr__(self) -> str:
        return f"<TokenBucket {format_rate(self.rate)} [{self.tokens:.2f}/{self.burst:g}]>"

    def take(self, now: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there will be."""
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def key_hash(key: str | bytes) -> str:
    """How keys are kept: the SHA-256 of the key, in hex (the key itself is never stored)."""
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).hexdigest()


def check(
    name: str,
    public: bool,
    keys: frozenset[str],
    bucket: TokenBucket | None,
    authorization: Sequence[bytes],
    now: float,
) -> Refusal | None:
    """None to let the request through, else the answer: 401 or 429, message, headers.

    The key is checked before the rate, so requests without a key do not use up the
    rate of the callers that have one.
    """
    if not public:
        how = (
            f"function {name!r} is private: send 'Authorization: Bearer <key>' with one of "
            f"its keys ('hearth keys create {name}' makes one)"
        )
        if len(authorization) > 1:
            return 401, f"more than one Authorization header; {how}", CHALLENGE
        parts = authorization[0].split() if authorization else []
        if len(parts) != 2 or parts[0].lower() != b"bearer":
            return 401, how, CHALLENGE
        if key_hash(parts[1]) not in keys:
            return (
                401,
                f"that key does not open function {name!r} (revoked, or another function's); {how}",
                (("www-authenticate", 'Bearer error="invalid_token"'),),
            )
    if bucket is not None:
        wait = bucket.take(now)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            return (
                429,
                f"function {name!r} is over its rate of {format_rate(bucket.rate)}; "
                f"retry in {seconds}s",
                (("retry-after", str(seconds)),),
            )
    return None


def without_authorization(head: bytes) -> bytes:
    """A request head without its Authorization lines (the key is for the gateway)."""
    lines = head.split(b"\r\n")
    return b"\r\n".join(line for line in lines if line[:14].lower() != _AUTHORIZATION)


class Access:
    """What `check` reads for one function: public or not, its key hashes, its bucket."""

    __slots__ = ("bucket", "clock", "keys", "name", "public")

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.clock = clock
        self.public = True
        self.keys: frozenset[str] = frozenset()
        self.bucket: TokenBucket | None = None

    def __repr__(self) -> str:
        kind = "public" if self.public else f"private, {len(self.keys)} keys"
        return f"<Access {self.name} [{kind} | {self.bucket or 'no rate'}]>"

    def configure(self, public: bool, rate: float | None) -> None:
        """New settings; the bucket is kept (with its tokens) while the rate stays."""
        self.public = public
        if rate is None:
            self.bucket = None
        elif self.bucket is None or self.bucket.rate != rate:
            self.bucket = TokenBucket(rate, self.clock())

    def admit(self, exchange: Exchange, headers: Sequence[tuple[bytes, bytes]]) -> Refusal | None:
        """The proxy's one call, once the route is known: refuse, or let through (a private
        function's request loses its Authorization header on the way)."""
        if self.public and self.bucket is None:
            return None
        authorization = [v for k, v in headers if k.lower() == b"authorization"]
        refusal = check(self.name, self.public, self.keys, self.bucket, authorization, self.clock())
        if refusal is None and not self.public:
            exchange.head = without_authorization(exchange.head)
        return refusal
