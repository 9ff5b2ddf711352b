"""The gateway's limits on what a client may send, and how long it may take."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GatewayConfig:
    max_head: int = 64 * 1024  # request line + headers, bytes: 431 past it
    max_url: int = 8 * 1024  # request target, bytes: 414 past it
    max_headers: int = 100  # header fields: 431 past it
    header_timeout: float = 10.0  # first byte of a request to the end of its headers: 408
    body_timeout: float = 30.0  # longest silence while the gateway waits for body bytes: 408
    keepalive: float = 75.0  # an idle connection is closed after this
    max_per_client: int = 2000  # open connections from one client address: 503 past it

    def __post_init__(self) -> None:
        if min(self.max_head, self.max_url, self.max_headers, self.max_per_client) < 1:
            raise ValueError("gateway limits must be positive")
        if min(self.header_timeout, self.body_timeout, self.keepalive) <= 0:
            raise ValueError("gateway timeouts must be positive")
