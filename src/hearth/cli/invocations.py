"""hearth invocations: a function's asynchronous invocations, one of them, or a retry."""

from __future__ import annotations

import base64
import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hearth.cli.client import Api, ClientError
from hearth.cli.common import DataDir, JsonOut, out

ACTIONS = ("show", "retry")
STATUSES = ("queued", "running", "done", "failed")
COLOURS = {"queued": "yellow", "running": "cyan", "done": "green", "failed": "red"}


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


def invocations(
    first: Annotated[
        str, typer.Argument(metavar="NAME|show|retry", help="A function, or what to do with ID.")
    ],
    invocation: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="With show or retry: the id.")
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only failed ones (dead letters).")
    ] = False,
    status: Annotated[
        str | None, typer.Option(help="Only those in this state: queued, running, done, failed.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    data: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Asynchronous invocations: `NAME` lists a function's (queued, running, done, failed),
    `show ID` one with its result, `retry ID` queues a failed one (a dead letter) again."""
    if invocation is not None:
        if first not in ACTIONS:
            raise ClientError(f"unknown action {first!r}: use `show ID` or `retry ID`")
        if first == "show":
            _show(Api.discover(data).request("GET", f"/v1/invocations/{invocation}"), as_json)
        else:
            again = Api.discover(data).request("POST", f"/v1/invocations/{invocation}/retry")
            if as_json:
                print(json.dumps(again))
            else:
                out.print(f"queued {invocation} again ({again['function']})", highlight=False)
        return
    if failed:
        status = "failed"
    if status is not None and status not in STATUSES:
        raise ClientError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
    rows = Api.discover(data).request("GET", f"/v1/functions/{first}/invocations", params=params)
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(box=None)
    for column in ("ID", "STATUS", "ATTEMPTS", "CREATED", "UPDATED", "REQUEST", "RESULT"):
        table.add_column(column)
    table.add_column("LAST ERROR", overflow="ellipsis", max_width=60, no_wrap=True)
    for row in rows:
        colour = COLOURS.get(row["status"], "white")
        table.add_row(
            row["id"],
            f"[{colour}]{row['status']}[/{colour}]",
            str(row["attempts"]),
            _when(row["created"]),
            _when(row["updated"]),
            escape(f"{row['method']} {row['url']}"),
            str(row["result_status"] or "-"),
            escape(row["last_error"] or ""),
        )
    out.print(table)


def _show(found: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(found))
        return
    colour = COLOURS.get(found["status"], "white")
    out.print(
        f"[bold]{found['id']}[/bold] {escape(found['function'])} "
        f"[{colour}]{found['status']}[/{colour}] after {found['attempts']} attempt(s)",
        highlight=False,
    )
    out.print(
        f"{escape(found['method'])} {escape(found['url'])}  request id "
        f"{escape(found['request_id'])}  created {_when(found['created'])}  updated "
        f"{_when(found['updated'])}",
        highlight=False,
    )
    if found["status"] == "queued" and found.get("next_try"):
        out.print(f"next try {_when(found['next_try'])}", highlight=False)
    if found.get("last_error"):
        out.print(f"[red]last error:[/red] {escape(found['last_error'])}", highlight=False)
    callback = found.get("callback")
    if callback:
        out.print(f"callback {escape(callback['url'])}: {callback['state'] or 'not yet'}")
    result = found.get("result")
    if not result:
        return
    cut = " (truncated to 1 MiB)" if result["truncated"] else ""
    out.print(f"result: {result['status']}{cut}", highlight=False)
    for name, value in result["headers"]:
        out.print(f"  {escape(name)}: {escape(value)}", style="dim", highlight=False)
    sys.stdout.flush()
    if result["base64"]:
        sys.stdout.buffer.write(base64.b64decode(result["body"]))
    else:
        sys.stdout.write(result["body"])
        if result["body"] and not result["body"].endswith("\n"):
            sys.stdout.write("\n")
