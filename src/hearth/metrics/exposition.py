"""The Prometheus scrape: a snapshot of the counters taken on the event loop (cheap: plain
numbers), then read from /proc and rendered in a thread, so a scrape never holds up the
gateway. Names follow Prometheus' conventions: a unit in each name, `_total` counters."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from hearth.gateway import Gateway
from hearth.gateway.meter import BUCKETS
from hearth.metrics.tally import Histogram, Tally
from hearth.supervisor import Instance

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CLASSES = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Live:
    """An instance as the scrape sees it."""

    function: str
    version: int
    id: str
    pid: int
    state: str
    rss: int


class Snapshot:
    """Every family but the ones read from /proc, built on the loop."""

    def __init__(self, gateway: Gateway, tally: Tally, instances: Iterable[Instance]) -> None:
        self.families: list[Metric] = []
        self.live = [
            Live(i.function, i.version, i.id, i.pid, str(i.state), i.rss) for i in instances
        ]
        self._gateway(gateway)
        self._instances()
        self._tally(tally)

    def _gateway(self, gateway: Gateway) -> None:
        labels = ["function", "version"]
        requests = CounterMetricFamily(
            "hearth_requests",
            "Requests answered, by status class (499: the client left first).",
            labels=[*labels, "code"],
        )
        duration = HistogramMetricFamily(
            "hearth_request_duration_seconds",
            "Time from the request's head to its last response byte, queue wait included.",
            labels=labels,
        )
        wait = HistogramMetricFamily(
            "hearth_request_queue_wait_seconds",
            "Time a request waited in its function's queue for a free instance.",
            labels=labels,
        )
        bytes_in = CounterMetricFamily(
            "hearth_request_body_bytes", "Request body bytes received.", labels=labels
        )
        bytes_out = CounterMetricFamily(
            "hearth_response_bytes", "Response bytes sent, heads included.", labels=labels
        )
        in_flight = GaugeMetricFamily(
            "hearth_requests_in_flight", "Requests being answered by an instance.", labels=labels
        )
        queued = GaugeMetricFamily(
            "hearth_requests_queued", "Requests waiting for a free instance.", labels=labels
        )
        for name, route in gateway.routes.items():
            for pool in route.pools:
                values = [name, str(pool.version)]
                meter = pool.meter
                for index, count in enumerate(meter.codes):
                    if count:
                        requests.add_metric([*values, CLASSES[index]], count)
                duration.add_metric(values, _buckets(meter.duration), meter.duration_sum)
                wait.add_metric(values, _buckets(meter.wait), meter.wait_sum)
                bytes_in.add_metric(values, meter.bytes_in)
                bytes_out.add_metric(values, meter.bytes_out)
                in_flight.add_metric(values, sum(b.in_flight for b in pool.backends))
                queued.add_metric(values, len(pool.waiters))
        self.families += [requests, duration, wait, bytes_in, bytes_out, in_flight, queued]
        self.families += [
            CounterMetricFamily(
                "hearth_unrouted_requests",
                "Requests for no known function (answered 404).",
                value=gateway.unrouted,
            ),
            CounterMetricFamily(
                "hearth_access_records_dropped",
                "Finished requests left out of the access log: it fell behind.",
                value=gateway.dropped,
            ),
            GaugeMetricFamily(
                "hearth_gateway_connections",
                "Open client connections.",
                value=len(gateway.connections),
            ),
        ]

    def _instances(self) -> None:
        states = GaugeMetricFamily(
            "hearth_instances",
            "Live instances by state.",
            labels=["function", "version", "state"],
        )
        counted: dict[tuple[str, str, str], int] = {}
        for live in self.live:
            key = (live.function, str(live.version), live.state)
            counted[key] = counted.get(key, 0) + 1
        for key, count in sorted(counted.items()):
            states.add_metric(list(key), count)
        self.families.append(states)

    def _tally(self, tally: Tally) -> None:
        starts = CounterMetricFamily(
            "hearth_instance_starts",
            "Instances started; cold: requests were waiting and no instance was ready.",
            labels=["function", "version", "cold"],
        )
        for (function, version, cold), count in sorted(tally.starts.items()):
            starts.add_metric([function, str(version), str(cold).lower()], count)
        start_seconds = HistogramMetricFamily(
            "hearth_instance_start_seconds",
            "Time from asking for an instance to its ready report.",
            labels=["function", "cold"],
        )
        for (function, cold), histogram in sorted(tally.start_seconds.items()):
            start_seconds.add_metric([function, str(cold).lower()], *_histogram(histogram))
        failures = CounterMetricFamily(
            "hearth_instance_start_failures",
            "Instances that failed to start.",
            labels=["function", "version"],
        )
        for (function, version), count in sorted(tally.start_failures.items()):
            failures.add_metric([function, str(version)], count)
        exits = CounterMetricFamily(
            "hearth_instance_exits",
            "Instances that ended: stopped by Hearth, crash, hang (no heartbeat), memory "
            "(over its limit) or killed (other).",
            labels=["function", "version", "reason"],
        )
        for (function, version, reason), count in sorted(tally.exits.items()):
            exits.add_metric([function, str(version), reason], count)
        recycles = CounterMetricFamily(
            "hearth_instance_recycles",
            "Instances replaced for holding a request past its timeout or breaking HTTP.",
            labels=["function", "version"],
        )
        for (function, version), count in sorted(tally.recycles.items()):
            recycles.add_metric([function, str(version)], count)
        deploys = CounterMetricFamily(
            "hearth_deploys", "Deploys by result.", labels=["function", "result"]
        )
        for (function, result), count in sorted(tally.deploys.items()):
            deploys.add_metric([function, result], count)
        deploy_seconds = HistogramMetricFamily(
            "hearth_deploy_seconds",
            "Time from a deploy's upload to the new version serving (or failing).",
            labels=["result"],
        )
        for result, histogram in sorted(tally.deploy_seconds.items()):
            deploy_seconds.add_metric([result], *_histogram(histogram))
        self.families += [starts, start_seconds, failures, exits, recycles, deploys]
        self.families.append(deploy_seconds)

    def collect(self) -> Iterator[Metric]:
        """Called in the rendering thread: the families, then what /proc says."""
        yield from self.families
        labels = ["function", "version", "instance"]
        memory = GaugeMetricFamily(
            "hearth_instance_resident_memory_bytes",
            "Resident memory of each instance, as last polled.",
            labels=labels,
        )
        cpu = CounterMetricFamily(
            "hearth_instance_cpu_seconds", "CPU time of each instance.", labels=labels
        )
        for live in self.live:
            values = [live.function, str(live.version), live.id]
            memory.add_metric(values, live.rss)
            seconds = cpu_seconds(live.pid)
            if seconds is not None:
                cpu.add_metric(values, seconds)
        yield memory
        yield cpu


def render(snapshot: Snapshot) -> bytes:
    """The exposition text (run it in a thread)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snapshot)
    ProcessCollector(registry=registry)  # the daemon's own process_* metrics
    return generate_latest(registry)


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def _buckets(counts: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts as Prometheus' cumulative `le` buckets."""
    total = 0
    out: list[tuple[str, float]] = []
    for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
        total += count
        out.append(("+Inf" if bound == float("inf") else repr(bound), total))
    return out


def _histogram(histogram: Histogram) -> tuple[list[tuple[str, float]], float]:
    return _buckets(histogram.counts), histogram.total
