"""Load shapes the autoscaler is judged by: a burst from zero and a stepped load.

Driven by a small asyncio HTTP/1.1 client (one keep-alive connection per client, every
request timed), light enough to run hundreds of clients beside the daemon on 2 cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Sample:
    at: float  # seconds since the load began, when the response ended
    ms: float
    ok: bool


@dataclass
class Client:
    """One connection, reopened when the server closes it."""

    host: str
    port: int
    request: bytes
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None

    @classmethod
    def to(
        cls, url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Client:
        parts = urlsplit(url)
        assert parts.hostname and parts.port
        path = parts.path or "/"
        head = f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        if body or method != "GET":
            head += f"Content-Length: {len(body)}\r\n"
        return cls(parts.hostname, parts.port, head.encode() + b"\r\n" + body)

    async def get(self) -> int:
        """One request; its status (0: the connection failed)."""
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(self.request)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length, closes = 0, False
            for line in head.lower().split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and b"close" in value:
                    closes = True
            await self.reader.readexactly(length)
            if closes:
                self.close()
            return status
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.close()
            return 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def burst(url: str, clients: int) -> dict[str, float]:
    """`clients` requests at once, each on a connection of its own: time until the last
    answer, latency p50/p99, errors (anything but 2xx)."""

    async def one(began: float) -> Sample:
        client = Client.to(url)
        status = await client.get()
        client.close()
        now = time.perf_counter()
        return Sample(now - began, (now - began) * 1000, 200 <= status < 300)

    async def run() -> list[Sample]:
        began = time.perf_counter()
        return await asyncio.gather(*(one(began) for _ in range(clients)))

    samples = asyncio.run(run())
    times = [s.ms for s in samples]
    return {
        "clients": clients,
        "all_served_s": round(max(s.at for s in samples), 3),
        "p50_ms": round(percentile(times, 50), 1),
        "p99_ms": round(percentile(times, 99), 1),
        "errors": sum(not s.ok for s in samples),
    }


def accepting(url: str, clients: int, seconds: float) -> dict[str, float]:
    """`clients` keep-alive connections posting `X-Hearth-Async: 1` requests for `seconds`:
    invocations accepted (202) per second, the time to each 202, errors (anything else)."""
    samples: list[Sample] = []

    async def client(began: float, stop: asyncio.Event) -> None:
        poster = Client.to(url, "POST", {"X-Hearth-Async": "1"}, b"bench")
        try:
            while not stop.is_set():
                start = time.perf_counter()
                status = await poster.get()
                now = time.perf_counter()
                samples.append(Sample(now - began, (now - start) * 1000, status == 202))
        finally:
            poster.close()

    async def run() -> float:
        began = time.perf_counter()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(client(began, stop)) for _ in range(clients)]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
        return time.perf_counter() - began

    elapsed = asyncio.run(run())
    accepted = sum(s.ok for s in samples)
    times = [s.ms for s in samples]
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "accepted": accepted,
        "accepted_per_s": round(accepted / elapsed, 1),
        "accept_p50_ms": round(percentile(times, 50), 2),
        "accept_p99_ms": round(percentile(times, 99), 2),
        "errors": len(samples) - accepted,
    }


@dataclass
class Steps:
    """A load that steps through (clients, seconds) phases; every request timed, and the
    function's instance count sampled twice a second."""

    url: str
    phases: list[tuple[int, float]]
    instances: Callable[[], int]
    samples: list[Sample] = field(default_factory=list)
    counts: list[tuple[float, int]] = field(default_factory=list)  # (at, instances)

    def run(self) -> list[dict[str, float]]:
        asyncio.run(self._run())
        return self.timeline()

    async def _run(self) -> None:
        began = time.perf_counter()
        stop = asyncio.Event()
        sampler = asyncio.create_task(self._sample(began, stop))
        running: list[asyncio.Task[None]] = []
        for clients, seconds in self.phases:
            while len(running) < clients:
                running.append(asyncio.create_task(self._client(began)))
            while len(running) > clients:
                running.pop().cancel()
            await asyncio.sleep(seconds)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        stop.set()
        await sampler

    async def _client(self, began: float) -> None:
        client = Client.to(self.url)
        try:
            while True:
                start = time.perf_counter()
                status = await client.get()
                now = time.perf_counter()
                self.samples.append(Sample(now - began, (now - start) * 1000, status == 200))
        finally:
            client.close()

    async def _sample(self, began: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            count = await asyncio.to_thread(self.instances)
            self.counts.append((time.perf_counter() - began, count))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    def timeline(self) -> list[dict[str, float]]:
        """Per second: clients, instances, requests, p50/p99 and errors."""
        total = sum(seconds for _, seconds in self.phases)
        rows = []
        for second in range(int(total)):
            done = [s for s in self.samples if second <= s.at < second + 1]
            counts = [c for at, c in self.counts if second <= at < second + 1]
            elapsed, clients = 0.0, 0
            for phase_clients, seconds in self.phases:
                if elapsed <= second:
                    clients = phase_clients
                elapsed += seconds
            rows.append(
                {
                    "t": second,
                    "clients": clients,
                    "instances": max(counts) if counts else (rows[-1]["instances"] if rows else 0),
                    "requests": len(done),
                    "p50_ms": round(percentile([s.ms for s in done], 50), 1),
                    "p99_ms": round(percentile([s.ms for s in done], 99), 1),
                    "errors": sum(not s.ok for s in done),
                }
            )
        return rows


def summary(timeline: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per phase (by client count): instances at its end, p99 across its seconds."""
    phases: dict[str, list[dict[str, float]]] = {}
    for row in timeline:
        phases.setdefault(str(row["clients"]), []).append(row)
    return {
        clients: {
            "instances_at_end": rows[-1]["instances"],
            "max_instances": max(r["instances"] for r in rows),
            "median_p99_ms": statistics.median(r["p99_ms"] for r in rows),
            "errors": sum(r["errors"] for r in rows),
        }
        for clients, rows in phases.items()
    }
