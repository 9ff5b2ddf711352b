"""A schedule's run: one request to the function through the daemon's own gateway.

Through the gateway, not straight to an instance: the run is routed, queued, limited,
timed out, metered and logged like any request, and starts an instance of a function
scaled to zero. `x-hearth-internal` lets it past a private function's keys and its rate
limit; the gateway takes that header off, so the function sees only `x-hearth-schedule`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from hearth.spec import Schedule

MARGIN = 5.0  # beyond the function's own timeout: the gateway answers 504 first


@dataclass(frozen=True)
class Answer:
    """How a run ended: an HTTP status, or none and the reason."""

    status: int | None
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class GatewayCaller:
    """Sends runs to `gateway` (e.g. http://127.0.0.1:8080) with the daemon's secret."""

    def __init__(self, gateway: str, internal: bytes) -> None:
        self.gateway = gateway.rstrip("/")
        self.internal = internal.decode("ascii")
        # trust_env=False: the daemon's own requests never go through a proxy from the
        # environment, and read no .netrc.
        self.client = httpx.AsyncClient(trust_env=False, follow_redirects=False)

    def __repr__(self) -> str:
        return f"<GatewayCaller {self.gateway}>"

    async def __call__(self, function: str, schedule: Schedule, timeout: float) -> Answer:
        url = f"{self.gateway}/fn/{function}{schedule.path}"
        headers = {
            "x-hearth-internal": self.internal,
            "x-hearth-schedule": schedule.when,
            "user-agent": "hearth-scheduler",
        }
        began = time.monotonic()
        limit = timeout + MARGIN
        try:
            async with self.client.stream(
                schedule.method, url, headers=headers, timeout=limit
            ) as response:
                async for _ in response.aiter_raw():  # read to the end, keep nothing
                    pass
        except httpx.TimeoutException:
            return Answer(None, time.monotonic() - began, f"no answer within {limit:g}s")
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return Answer(None, time.monotonic() - began, reason)
        return Answer(response.status_code, time.monotonic() - began)

    async def close(self) -> None:
        await self.client.aclose()
