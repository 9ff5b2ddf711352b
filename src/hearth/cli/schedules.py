"""`hearth schedules`: each serving schedule, its next tick and its last run."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hearth.cli.client import Api
from hearth.cli.common import DataDir, JsonOut, out

COLUMNS = ("FUNCTION", "SCHEDULE", "METHOD PATH", "NEXT", "LAST")


def schedules(
    name: Annotated[str | None, typer.Argument(help="One function [default: all]")] = None,
    data: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Schedules ([[schedule]] in hearth.toml, cron in UTC): next run, last run's status and
    seconds. Each run is an event: `hearth events NAME`."""
    path = f"/v1/functions/{name}/schedules" if name else "/v1/schedules"
    rows = Api.discover(data).request("GET", path)
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        out.print(f"{name} has no schedules" if name else "no schedules", highlight=False)
        return
    out.print(table(rows, time.time()))


def table(rows: list[dict[str, Any]], now: float) -> Table:
    shown = Table(box=None)
    for column in COLUMNS:
        shown.add_column(column)
    for row in rows:
        shown.add_row(
            row["function"],
            escape(row["schedule"]),
            escape(f"{row['method']} {row['path']}"),
            f"in {until(row['next_run'] - now)} / "
            + time.strftime("%H:%M:%S UTC", time.gmtime(row["next_run"])),
            escape(last(row, now)),
        )
    return shown


def until(seconds: float) -> str:
    """12s, 4m 05s, 3h 20m, 2d 5h."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def last(row: dict[str, Any], now: float) -> str:
    """The last run: `200, 0.12s`, `running (3s)`, `failed: why`, or `-`."""
    if row["running"] and row["last_run"] is not None:
        return f"running ({until(now - row['last_run'])})"
    if row["last_status"] is not None:
        return f"{row['last_status']}, {row['last_seconds']:.2f}s"
    if row["last_error"]:
        return f"failed: {row['last_error']}"
    if row["last_run"] is not None:  # started, and the daemon stopped before an answer
        return "no answer"
    return "-"
