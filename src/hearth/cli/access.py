"""hearth tokens / keys / secrets: who may manage and call functions, and their secrets.

A new token or key goes to stdout alone (`TOKEN=$(hearth tokens create --scope read)`),
its details to stderr; it is shown once and never again.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hearth.cli.client import Api, ClientError
from hearth.cli.common import DataDir, JsonOut, err, out
from hearth.spec import env_name_problem

tokens_app = typer.Typer(help="API tokens with a scope: admin, read or deploy:NAME.")
keys_app = typer.Typer(
    help=f"Keys for calling private functions ({escape('[access]')} public = false)."
)
secrets_app = typer.Typer(help="Secrets: environment variables stored encrypted.")


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    table = Table(box=None)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    return table


def _shown_once(what: str, secret: str, details: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(details))
        return
    err.print(f"{escape(what)}; it is shown only this once:", highlight=False)
    print(secret)


# tokens


@tokens_app.command("create")
def create_token(
    scope: Annotated[str, typer.Option(help="admin, read, or deploy:NAME (one function).")],
    name: Annotated[str, typer.Option(help="Who or what holds it.")] = "",
    data: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Make an API token; prints it (once)."""
    made = Api.discover(data).request("POST", "/v1/tokens", json={"scope": scope, "name": name})
    _shown_once(f"token {made['id']} ({made['scope']})", made["token"], made, as_json)


@tokens_app.command("ls")
def list_tokens(data: DataDir = None, as_json: JsonOut = False) -> None:
    """Every API token: id, name, scope, created (never the token)."""
    rows = Api.discover(data).request("GET", "/v1/tokens")
    if as_json:
        print(json.dumps(rows))
        return
    out.print(
        _table(
            ("ID", "SCOPE", "NAME", "CREATED"),
            [(t["id"], t["scope"], t["name"] or "-", _when(t["created"])) for t in rows],
        )
    )


@tokens_app.command("revoke")
def revoke_token(
    token_id: Annotated[str, typer.Argument(metavar="ID")], data: DataDir = None
) -> None:
    """Revoke a token at once."""
    Api.discover(data).request("DELETE", f"/v1/tokens/{token_id}")
    out.print(f"revoked token {escape(token_id)}", highlight=False)


# keys


@keys_app.command("create")
def create_key(name: str, data: DataDir = None, as_json: JsonOut = False) -> None:
    """Make a key for calling NAME when it is private; prints it (once)."""
    made = Api.discover(data).request("POST", f"/v1/functions/{name}/keys")
    what = f"key {made['id']} of {name} (send it as 'Authorization: Bearer <key>')"
    _shown_once(what, made["key"], made, as_json)


@keys_app.command("ls")
def list_keys(name: str, data: DataDir = None, as_json: JsonOut = False) -> None:
    """NAME's keys: id and creation time (never the key)."""
    rows = Api.discover(data).request("GET", f"/v1/functions/{name}/keys")
    if as_json:
        print(json.dumps(rows))
        return
    out.print(_table(("ID", "CREATED"), [(k["id"], _when(k["created"])) for k in rows]))


@keys_app.command("revoke")
def revoke_key(
    name: str, key_id: Annotated[str, typer.Argument(metavar="ID")], data: DataDir = None
) -> None:
    """Revoke one of NAME's keys; requests with it get 401 at once."""
    Api.discover(data).request("DELETE", f"/v1/functions/{name}/keys/{key_id}")
    out.print(f"revoked key {escape(key_id)} of {escape(name)}", highlight=False)


# secrets


@secrets_app.command("set")
def set_secret(
    name: str,
    key: Annotated[str, typer.Argument(help="The environment variable, e.g. API_KEY.")],
    file: Annotated[
        Path | None, typer.Option("--file", help="Take the value from this file, exactly.")
    ] = None,
    data: DataDir = None,
    as_json: JsonOut = False,
) -> None:
    """Set a secret of NAME; the value comes from stdin (one trailing newline dropped) or
    --file. Serving instances are replaced to take it, with zero downtime."""
    _check_key(key)
    value = _secret_value(key, file)
    result = Api.discover(data).request(
        "PUT", f"/v1/functions/{name}/secrets/{key}", json={"value": value}
    )
    if as_json:
        print(json.dumps(result))
        return
    after = "instances rolled" if result["rolled"] else "instances started from now on have it"
    out.print(f"[green]✓[/green] {escape(key)} set for {escape(name)}; {after}", highlight=False)


def _check_key(key: str) -> None:
    problem = env_name_problem(key)
    if problem is not None:
        raise ClientError(f"secret {key!r}: {problem}")


def _secret_value(key: str, file: Path | None) -> str:
    if file is not None:
        try:
            return file.read_bytes().decode()
        except OSError as exc:
            raise ClientError(f"cannot read {file}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ClientError(f"{file} is not UTF-8 text; a secret is text") from exc
    if sys.stdin.isatty():
        return str(typer.prompt(f"value of {key}", hide_input=True, err=True))
    text = sys.stdin.read()
    return text[:-1] if text.endswith("\n") else text


@secrets_app.command("ls")
def list_secrets(name: str, data: DataDir = None, as_json: JsonOut = False) -> None:
    """NAME's secrets: names and update times (never the values)."""
    rows = Api.discover(data).request("GET", f"/v1/functions/{name}/secrets")
    if as_json:
        print(json.dumps(rows))
        return
    out.print(_table(("NAME", "UPDATED"), [(s["name"], _when(s["updated"])) for s in rows]))


@secrets_app.command("rm")
def remove_secret(name: str, key: str, data: DataDir = None) -> None:
    """Remove a secret of NAME; serving instances are replaced without it."""
    _check_key(key)
    result = Api.discover(data).request("DELETE", f"/v1/functions/{name}/secrets/{key}")
    after = "; instances rolled" if result["rolled"] else ""
    out.print(f"removed {escape(key)} from {escape(name)}{after}", highlight=False)
