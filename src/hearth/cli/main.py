"""hearth: run the platform and manage functions."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from hearth.cli.access import keys_app, secrets_app, tokens_app
from hearth.cli.client import Api, ClientError, data_dir
from hearth.cli.common import DataDir, JsonOut, err, out
from hearth.cli.invocations import invocations
from hearth.cli.schedules import schedules
from hearth.cli.top import top
from hearth.spec import folder_name
from hearth.units import format_duration, format_size

app = typer.Typer(
    help="Hearth: deploy a folder of Python, get a URL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(top)
app.command()(schedules)
app.command()(invocations)
app.add_typer(tokens_app, name="tokens")
app.add_typer(keys_app, name="keys")
app.add_typer(secrets_app, name="secrets")


def main() -> None:
    try:
        app()
    except ClientError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        sys.exit(1)


@app.command()
def up(
    deploy: Annotated[
        list[Path] | None, typer.Argument(help="Function folders to deploy once running.")
    ] = None,
    data: DataDir = None,
    host: Annotated[str, typer.Option(envvar="HEARTH_HOST", help="Gateway address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="HEARTH_PORT", help="Gateway port.")] = 8080,
    api_host: Annotated[str, typer.Option(envvar="HEARTH_API_HOST")] = "127.0.0.1",
    api_port: Annotated[int, typer.Option(envvar="HEARTH_API_PORT", help="API port.")] = 8081,
    domain: Annotated[
        str, typer.Option(envvar="HEARTH_DOMAIN", help="Functions answer on NAME.DOMAIN.")
    ] = "localhost",
    sandbox: Annotated[
        str,
        typer.Option(
            envvar="HEARTH_SANDBOX",
            help="auto: every layer the host offers; strict: refuse to start without all; "
            "off: no walls (development only).",
        ),
    ] = "auto",
    index_url: Annotated[
        str | None,
        typer.Option(envvar="HEARTH_INDEX_URL", help="Package index for requirements.txt."),
    ] = None,
    max_header_size: Annotated[
        str, typer.Option(envvar="HEARTH_MAX_HEADER_SIZE", help="Request line + headers (431).")
    ] = "64KiB",
    header_timeout: Annotated[
        str, typer.Option(envvar="HEARTH_HEADER_TIMEOUT", help="To receive headers (408).")
    ] = "10s",
    body_timeout: Annotated[
        str, typer.Option(envvar="HEARTH_BODY_TIMEOUT", help="Longest body stall (408).")
    ] = "30s",
    keepalive: Annotated[
        str, typer.Option(envvar="HEARTH_KEEPALIVE", help="Idle client connections close.")
    ] = "75s",
    max_per_client: Annotated[
        int,
        typer.Option(envvar="HEARTH_MAX_PER_CLIENT", help="Open connections per client address."),
    ] = 2000,
    metrics: Annotated[
        bool,
        typer.Option(
            envvar="HEARTH_METRICS",
            help="Count every request (metrics, charts, top); off only to measure what "
            "counting costs.",
        ),
    ] = True,
    access_log: Annotated[
        bool,
        typer.Option(
            envvar="HEARTH_ACCESS_LOG", help="A line per request in each function's access log."
        ),
    ] = True,
    backup_every: Annotated[
        str | None,
        typer.Option(envvar="HEARTH_BACKUP_EVERY", help="Take a backup this often, e.g. 6h."),
    ] = None,
    backup_keep: Annotated[
        int, typer.Option(envvar="HEARTH_BACKUP_KEEP", help="Scheduled backups kept.")
    ] = 14,
    backup_dir: Annotated[
        Path | None,
        typer.Option(envvar="HEARTH_BACKUP_DIR", help="Where they go [default: DATA_DIR/backups]."),
    ] = None,
    otlp: Annotated[
        str | None,
        typer.Option(
            envvar="OTEL_EXPORTER_OTLP_ENDPOINT",
            help="An OpenTelemetry collector (OTLP/HTTP, e.g. http://127.0.0.1:4318): a span "
            "per request.",
        ),
    ] = None,
    async_backoff: Annotated[
        str,
        typer.Option(
            envvar="HEARTH_ASYNC_BACKOFF_BASE",
            help="Wait before an asynchronous invocation's first retry (and a callback's); "
            "doubles each time, at most 5m.",
        ),
    ] = "1s",
    callback_private: Annotated[
        bool,
        typer.Option(
            "--callback-private",
            envvar="HEARTH_CALLBACK_PRIVATE",
            help="Let X-Callback-Url reach loopback and private addresses (refused by default).",
        ),
    ] = False,
) -> None:
    """Run the daemon in the foreground (gateway, API, instances)."""
    from hearth.config import DaemonConfig
    from hearth.daemon.main import DaemonError, run
    from hearth.gateway import GatewayConfig
    from hearth.units import parse_duration, parse_size

    try:
        gateway = GatewayConfig(
            max_head=parse_size(max_header_size),
            header_timeout=parse_duration(header_timeout),
            body_timeout=parse_duration(body_timeout),
            keepalive=parse_duration(keepalive),
            max_per_client=max_per_client,
        )
        every = parse_duration(backup_every) if backup_every else None
        if every is not None and every < 1:
            raise ValueError(f"--backup-every {backup_every}: at least 1s")
        if backup_keep < 1:
            raise ValueError(f"--backup-keep {backup_keep}: keep at least 1")
        backoff = parse_duration(async_backoff)
        if not 0.001 <= backoff <= 300:
            raise ValueError(f"--async-backoff {async_backoff}: from 1ms to 5m")
    except ValueError as exc:
        raise ClientError(f"hearth up: {exc}") from exc
    config = DaemonConfig(
        data_dir=data_dir(data).resolve(),
        host=host,
        port=port,
        api_host=api_host,
        api_port=api_port,
        domain=domain,
        sandbox=sandbox,
        index_url=index_url,
        gateway=gateway,
        metrics=metrics,
        access_log=access_log,
        otlp=otlp,
        backup_every=every,
        backup_keep=backup_keep,
        backup_dir=backup_dir.resolve() if backup_dir else None,
        async_backoff=backoff,
        callback_private=callback_private,
    )
    try:
        run(config, deploy or [])
    except DaemonError as exc:
        raise ClientError(str(exc)) from exc
    except OSError as exc:
        raise ClientError(f"cannot start: {exc}") from exc


@app.command()
def deploy(
    folder: Annotated[Path, typer.Argument(help="The function's folder.")],
    name: Annotated[str | None, typer.Option(help="Function name [default: from folder]")] = None,
    data: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Deploy a folder as a new version; prints its URLs once it serves."""
    from hearth.builder.bundle import BundleError, pack

    api = Api.discover(data)
    name = name or folder_name(folder)
    try:
        bundle = pack(folder)
    except (BundleError, OSError) as exc:
        raise ClientError(str(exc)) from exc
    began = time.monotonic()
    result: dict[str, Any] | None = None
    error: str | None = None
    with err.status(f"deploying {name}", spinner="dots") as status:
        for line in api.stream_lines(
            "POST",
            f"/v1/functions/{name}/versions",
            content=bundle,
            headers={"content-type": "application/gzip"},
        ):
            message = json.loads(line)
            if "log" in message:
                status.update(f"deploying {name}: {message['log'][:100]}")
                if message["log"].startswith(("building", "environment")) and not as_json:
                    err.print(f"  {escape(message['log'])}", style="dim", highlight=False)
            elif "result" in message:
                result = message["result"]
            else:
                error = message.get("error", "unknown error")
    if error is not None or result is None:
        raise ClientError(f"deploy failed: {error}")
    result["client_seconds"] = round(time.monotonic() - began, 3)
    if as_json:
        print(json.dumps(result))
        return
    out.print(
        f"[green]✓[/green] {name} [bold]v{result['version']}[/bold] serving "
        f"({result['seconds']:.2f}s)",
        highlight=False,
    )
    for url in result["urls"]:
        out.print(f"  {url}", highlight=False)


@app.command("ls")
def list_functions(data: DataDir = None, as_json: JsonOut = False) -> None:
    """List functions: active version, instances, URL."""
    functions = Api.discover(data).request("GET", "/v1/functions")
    if as_json:
        print(json.dumps(functions))
        return
    table = Table(box=None)
    for column in ("NAME", "VERSION", "INSTANCES", "URL"):
        table.add_column(column)
    for f in functions:
        ready = sum(1 for i in f["instances"] if i["state"] == "ready")
        table.add_row(f["name"], f"v{f['version']}", str(ready), f["urls"][0])
    out.print(table)


@app.command()
def status(name: str, data: DataDir = None, as_json: JsonOut = False) -> None:
    """Versions, instances (pid, state, in-flight, age) and settings of a function."""
    info = Api.discover(data).request("GET", f"/v1/functions/{name}")
    if as_json:
        print(json.dumps(info))
        return
    traffic = info.get("traffic") or {}
    split = (
        "" if len(traffic) < 2 else " (" + ", ".join(f"v{v}={w}" for v, w in traffic.items()) + ")"
    )
    out.print(
        f"[bold]{name}[/bold] v{info['version']}{split}  {'  '.join(info['urls'])}",
        highlight=False,
    )
    if info.get("last_error"):
        retry = info.get("next_try_in")
        when = f" (next try in {retry:.1f}s)" if retry else ""
        out.print(f"[red]last error{when}:[/red] {escape(info['last_error'])}", highlight=False)
    table = Table(title="instances", box=None, title_justify="left")
    for column in ("ID", "PID", "STATE", "IN-FLIGHT", "REQUESTS", "AGE"):
        table.add_column(column)
    for i in info["instances"]:
        table.add_row(
            i["id"],
            str(i["pid"]),
            i["state"],
            str(i["in_flight"]),
            str(i["requests"]),
            f"{i['age']:.0f}s",
        )
    out.print(table)
    out.print(_versions_table(info["versions"], title="versions"))
    spec = info.get("spec") or {}
    if spec:
        access = spec.get("access", {})
        shown = f"scale {spec['scale']}  limits {spec['limits']}  access {access}"
        out.print(escape(shown), highlight=False)
        planned = [
            f"{s['cron'] or 'every ' + format_duration(s['every'])} {s['method']} {s['path']}"
            for s in spec.get("schedules", [])
        ]
        if planned:
            shown = f"schedules (`hearth schedules {name}`): " + "; ".join(planned)
            out.print(escape(shown), highlight=False)
    counts = info.get("invocations") or {}
    if any(counts.values()):
        shown = ", ".join(f"{n} {state}" for state, n in counts.items())
        out.print(f"async invocations: {shown}", highlight=False)
    kv = info.get("kv")
    if kv:
        state = f"running (pid {kv['pid']})" if kv["running"] else "[red]not running[/red]"
        cap = format_size(kv["memory_limit"])
        out.print(f"kv {state}, {cap} cap, {kv['url']}", highlight=False)


@app.command()
def logs(
    name: str,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    tail: Annotated[int, typer.Option(help="Lines of history to show.")] = 100,
    access: Annotated[
        bool, typer.Option("--access", help="The access log: one line per request.")
    ] = False,
    data: DataDir = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --access: the JSON line of each request.")
    ] = False,
) -> None:
    """The function's stdout/stderr, with time and instance id; with --access, its requests
    (time, request id, method, path, status, bytes, duration, queue wait, instance,
    version, client)."""
    api = Api.discover(data)
    params: dict[str, Any] = {"tail": tail, "follow": follow, "access": access}
    try:
        for line in api.stream_lines("GET", f"/v1/functions/{name}/logs", params=params):
            print(line if as_json or not access else _access_line(line), flush=True)
    except KeyboardInterrupt:
        return


def _access_line(line: str) -> str:
    try:
        r = json.loads(line)
        return (
            f"{r['time']} {r['client']} {r['method']} {r['path']} {r['status']} "
            f"{r['bytes_out']}B {r['duration_ms']:.1f}ms (queue {r['queue_ms']:.1f}ms) "
            f"v{r['version']} {r['instance'] or '-'} id={r['request_id']}"
        )
    except (ValueError, KeyError, TypeError):
        return line


@app.command()
def events(
    name: str,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    data: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Deploys, rollbacks, traffic changes, instance starts, crashes, scale changes and
    schedule runs."""
    api = Api.discover(data)
    if follow:
        try:
            for line in api.stream_lines(
                "GET", f"/v1/functions/{name}/events", params={"follow": True}
            ):
                if as_json:
                    print(line, flush=True)
                else:
                    _print_event(json.loads(line))
        except KeyboardInterrupt:
            return
        return
    rows = api.request("GET", f"/v1/functions/{name}/events")
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        _print_event(row)


def _print_event(row: dict[str, Any]) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["time"]))
    out.print(f"{stamp} [bold]{row['kind']}[/bold] {escape(row['message'])}", highlight=False)


@app.command()
def versions(name: str, data: DataDir = None, as_json: JsonOut = False) -> None:
    """Every version: number, created, bundle hash, status, traffic share."""
    rows = Api.discover(data).request("GET", f"/v1/functions/{name}/versions")
    if as_json:
        print(json.dumps(rows))
        return
    out.print(_versions_table(rows))


def _versions_table(rows: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title, box=None, title_justify="left")
    for column in ("VERSION", "STATUS", "TRAFFIC", "CREATED", "BUNDLE"):
        table.add_column(column)
    for v in rows:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v["created"]))
        share = f"{v['traffic']:g}%" if v["traffic"] else "-"
        table.add_row(f"v{v['number']}", v["status"], share, created, v["bundle"][:12])
    return table


@app.command()
def rollback(
    name: str,
    to: Annotated[int | None, typer.Option(help="Version [default: the one before]")] = None,
    data: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Serve the previous (or the named) version again, with zero downtime."""
    result = Api.discover(data).request("POST", f"/v1/functions/{name}/rollback", json={"to": to})
    _print_change(result, as_json)


@app.command()
def traffic(
    name: str,
    split: Annotated[list[str], typer.Argument(help="VERSION=SHARE ... (or one VERSION)")],
    data: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Split traffic between versions: `hearth traffic NAME 3=90 4=10`; `NAME 4` = all to 4."""
    weights: dict[str, int] = {}
    for part in split:
        version, _, share = part.partition("=")
        try:
            weights[str(int(version.lstrip("v")))] = int(share) if share else 100
        except ValueError:
            raise ClientError(f"cannot read {part!r}: write VERSION=SHARE, e.g. 3=90") from None
    result = Api.discover(data).request(
        "POST", f"/v1/functions/{name}/traffic", json={"weights": weights}
    )
    _print_change(result, as_json)


@app.command()
def scale(
    name: str,
    min_: Annotated[int | None, typer.Option("--min", help="Instances kept warm.")] = None,
    max_: Annotated[int | None, typer.Option("--max", help="Instances at most.")] = None,
    idle: Annotated[
        str | None, typer.Option(help='No request for this long: down to min ("5m").')
    ] = None,
    target: Annotated[
        float | None, typer.Option(help="Aim at concurrency x target in flight per instance.")
    ] = None,
    window: Annotated[str | None, typer.Option(help='The stable window ("60s").')] = None,
    data: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Change a function's [scale] settings live, without a deploy: `hearth scale NAME
    --min 2 --max 20`. Kept across restarts; a new deploy brings its hearth.toml's."""
    changes: dict[str, Any] = {
        key: value
        for key, value in (
            ("min", min_),
            ("max", max_),
            ("idle", idle),
            ("target", target),
            ("window", window),
        )
        if value is not None
    }
    if not changes:
        raise ClientError("nothing to change: give --min, --max, --idle, --target or --window")
    result = Api.discover(data).request("PATCH", f"/v1/functions/{name}/scale", json=changes)
    if as_json:
        print(json.dumps(result))
        return
    said = result["changed"] or "nothing changed"
    out.print(f"[green]✓[/green] {escape(result['name'])}: {escape(said)}", highlight=False)


def _print_change(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    total = sum(result["traffic"].values()) or 1
    shares = "  ".join(f"v{v}: {100 * w / total:.0f}%" for v, w in result["traffic"].items())
    out.print(f"[green]✓[/green] {result['name']} serving {shares}", highlight=False)


@app.command()
def invoke(
    name: str,
    path: Annotated[str, typer.Option(help="Path inside the function.")] = "/",
    data_: Annotated[str | None, typer.Option("--data", "-d", help="Request body.")] = None,
    method: Annotated[str | None, typer.Option("--method", "-X")] = None,
    key: Annotated[
        str | None, typer.Option(envvar="HEARTH_KEY", help="A key, for a private function.")
    ] = None,
    data: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Send one request to a function through the gateway; print status and body."""
    gateway = Api.discover(data).request("GET", "/v1/info")["gateway"]
    url = f"{gateway}/fn/{name}/{path.lstrip('/')}"
    verb = method or ("POST" if data_ is not None else "GET")
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.request(verb, url, content=data_, headers=headers, timeout=None)
    except httpx.TransportError as exc:
        raise ClientError(f"cannot reach the gateway at {gateway}: {exc}") from exc
    if as_json:
        print(
            json.dumps(
                {
                    "status": response.status_code,
                    "headers": dict(response.headers),
                    "body": response.text,
                }
            )
        )
    else:
        color = "green" if response.status_code < 400 else "red"
        err.print(f"[{color}]{response.status_code}[/{color}] {verb} {url}", highlight=False)
        sys.stdout.write(response.text)
        if response.text and not response.text.endswith("\n"):
            sys.stdout.write("\n")
    if response.status_code >= 400:
        raise typer.Exit(1)


@app.command()
def backup(
    file: Annotated[
        Path | None, typer.Argument(help="Where [default: hearth-YYYYmmdd-HHMMSS.tar.gz]")
    ] = None,
    data: DataDir = None,
) -> None:
    """One archive of everything (state, secret key, bundles, every function's data),
    taken while serving. Keep it safe: it opens the secrets."""
    target = file or Path(time.strftime("hearth-%Y%m%d-%H%M%S.tar.gz"))
    Api.discover(data).download("/v1/backup", target)
    out.print(f"wrote {target} ({target.stat().st_size} bytes)")


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="An archive made by `hearth backup`.")],
    data: DataDir = None,
) -> None:
    """Make a new data directory from a backup (checked whole first); `hearth up` there
    serves what the backup held. Run it with no daemon on that directory."""
    from hearth.store.backup import BackupError
    from hearth.store.backup import restore as unpack

    target = data_dir(data).resolve()
    try:
        manifest = unpack(file, target)
    except BackupError as exc:
        raise ClientError(str(exc)) from exc
    functions = ", ".join(manifest["functions"]) or "none"
    out.print(f"restored {target} from {file} (functions: {functions})")


@app.command("data")
def data_command(
    name: str,
    action: Annotated[str, typer.Argument(help="ls, get or put")] = "ls",
    path: Annotated[str, typer.Argument(help="A path inside the data folder.")] = "",
    file: Annotated[
        Path | None, typer.Argument(help="put: the file to send (default: stdin)")
    ] = None,
    data: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Look into a function's data folder (HEARTH_DATA): `ls [PATH]`, `get PATH` (to
    stdout), `put PATH [FILE]` (from FILE or stdin)."""
    api = Api.discover(data)
    where = f"/v1/functions/{name}/data"
    if action == "put":
        body = file.read_bytes() if file is not None else sys.stdin.buffer.read()
        octets = {"content-type": "application/octet-stream"}
        result = api.request("PUT", where, params={"path": path}, content=body, headers=octets)
        print(json.dumps(result) if as_json else f"wrote {result['bytes']} bytes to {path}")
        return
    if action not in ("ls", "get"):
        raise ClientError(f"unknown action {action!r}: use ls, get or put")
    response = api.raw("GET", where, params={"path": path})
    if response.headers.get("content-type", "").startswith("application/json"):
        listing = response.json()
        if action == "get":
            raise ClientError(f"{path or '/'} is a folder: use `hearth data {name} ls {path}`")
        if as_json:
            print(json.dumps(listing))
            return
        table = Table(box=None)
        for column in ("NAME", "KIND", "SIZE", "MODIFIED"):
            table.add_column(column)
        for entry in listing["entries"]:
            shown = entry["name"] + ("/" if entry["kind"] == "dir" else "")
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["modified"]))
            table.add_row(shown, entry["kind"], str(entry["size"]), when)
        out.print(table)
        return
    sys.stdout.buffer.write(response.content)


@app.command()
def rm(
    name: str,
    purge: Annotated[
        bool, typer.Option("--purge", help="Remove its data (HEARTH_DATA) too.")
    ] = False,
    data: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Drain and stop a function, and forget it; its data is kept unless --purge."""
    params = {"purge": "true"} if purge else {}
    result = Api.discover(data).request("DELETE", f"/v1/functions/{name}", params=params)
    if as_json:
        print(json.dumps(result))
    elif result.get("data"):
        out.print(
            f"removed {name}; its data is kept in {result['data']} "
            f"(`hearth rm {name} --purge` removes it)"
        )
    else:
        out.print(f"removed {name}" + (" and its data" if purge else ""))


if __name__ == "__main__":
    main()
