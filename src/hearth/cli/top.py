"""`hearth top`: every serving version's traffic, latency, errors and instances, live."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from hearth.cli.client import Api
from hearth.cli.common import DataDir, JsonOut, out

COLUMNS = ("FUNCTION", "VERSION", "REQ/S", "P50 MS", "P99 MS", "5XX/S", "INSTANCES", "MEMORY")


def top(
    once: Annotated[bool, typer.Option("--once", help="Print one snapshot and exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 1.0,
    data: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Live table of serving versions, busiest first: req/s, p50/p99 ms, 5xx/s, instances,
    memory (rates over the last 5 s)."""
    api = Api.discover(data)
    if once:
        snapshot = api.request("GET", "/v1/metrics")
        if as_json:
            print(json.dumps(snapshot))
        else:
            out.print(table(snapshot))
        return
    try:
        with Live(table(api.request("GET", "/v1/metrics")), console=out, screen=False) as live:
            while True:
                time.sleep(interval)
                live.update(table(api.request("GET", "/v1/metrics")))
    except KeyboardInterrupt:
        return


def table(snapshot: dict[str, Any]) -> Table:
    shown = Table(
        box=None, caption=f"rates over the last {snapshot['window_s']} s", caption_justify="left"
    )
    for column in COLUMNS:
        shown.add_column(column, justify="left" if column in COLUMNS[:2] else "right")
    for row in snapshot["versions"]:
        errors = row["errors_per_s"]
        shown.add_row(
            row["function"],
            f"v{row['version']}" + (f" ({row['weight']}%)" if row["weight"] != 100 else ""),
            f"{row['rps']:.1f}",
            f"{row['p50_ms']:.1f}",
            f"{row['p99_ms']:.1f}",
            f"[red]{errors:.1f}[/red]" if errors else "0",
            str(row["instances"]) + (f" +{row['queued']} queued" if row["queued"] else ""),
            f"{row['memory_bytes'] / 2**20:.0f} MB",
        )
    return shown
