"""What the gateway counts of each version's requests, on the hot path.

A few integer additions and one bisect per request, no lock, no allocation: the scrape
and the history read these cumulative counters later and take differences.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import NamedTuple

# Upper bounds of the latency buckets, in seconds (the last bucket is everything above).
BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
    30.0,
    60.0,
)
CLIENT_GONE = 499  # the client left before its answer (nginx's code for it)


class Finished(NamedTuple):
    """A finished request as the access log and the span exporter read it. The gateway
    keeps it as a plain tuple in this order (`Finished._make` names the fields): cheap to
    make, nothing for the garbage collector to follow, and `marshal` sends a second's
    worth to the access log's writer in one call."""

    at: float  # wall-clock time of its end
    took: float  # seconds from its head to its end, queue wait included
    waited: float  # seconds in the queue
    status: int
    into: int  # request body bytes
    out: int  # response bytes, head included
    method: bytes
    url: bytes
    request_id: bytes
    trace: bytes  # the trace id, 32 hex digits
    span: bytes  # the gateway's span id, 16 hex digits
    parent: bytes  # the caller's span id (b"": the trace started at the gateway)
    flags: bytes
    instance: str | None
    client: bytes
    function: str
    version: int


class Meter:
    """Cumulative counters of one version's requests, as the gateway saw them: answers by
    status class, duration (queue wait included) and queue wait in BUCKETS, bytes."""

    __slots__ = ("bytes_in", "bytes_out", "codes", "duration", "duration_sum", "wait", "wait_sum")

    def __init__(self) -> None:
        self.codes = [0, 0, 0, 0, 0, 0]  # by status // 100; 0: no status
        self.duration = [0] * (len(BUCKETS) + 1)  # per bucket, not cumulative
        self.duration_sum = 0.0
        self.wait = [0] * (len(BUCKETS) + 1)
        self.wait_sum = 0.0
        self.bytes_in = 0
        self.bytes_out = 0

    def record(self, status: int, duration: float, wait: float, into: int, out: int) -> None:
        self.codes[status // 100 if 100 <= status < 600 else 0] += 1
        self.duration[bisect_left(BUCKETS, duration)] += 1
        self.duration_sum += duration
        self.wait[bisect_left(BUCKETS, wait)] += 1
        self.wait_sum += wait
        self.bytes_in += into
        self.bytes_out += out

    @property
    def requests(self) -> int:
        return sum(self.codes)


def quantile(counts: list[int], q: float) -> float:
    """The q-quantile (0..1) of a distribution given as counts per bucket, interpolated
    within its bucket as Prometheus' histogram_quantile does; 0.0 when empty."""
    total = sum(counts)
    if total == 0:
        return 0.0
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low = BUCKETS[index - 1] if index > 0 else 0.0
            if index >= len(BUCKETS):
                return BUCKETS[-1]  # above the last bound: the bound is all that is known
            high = BUCKETS[index]
            return low + (high - low) * (rank - seen) / count
        seen += count
    return BUCKETS[-1]
