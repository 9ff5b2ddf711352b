"""SQLite (WAL) state. Every write is one transaction: a crash leaves the old state or the new."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hearth.store.migrations import migrate

ROLLUP_COLUMNS = (
    *("t", "seconds", "requests", "errors", "p50", "p99"),
    *("instances", "in_flight", "queued", "memory"),
)
FILE_TOKEN = "file"  # the id of the admin token kept in DATA_DIR/token


@dataclass(frozen=True)
class VersionRow:
    function: str
    number: int
    bundle: str
    env: str
    spec: dict[str, Any]
    status: str
    error: str | None
    created: float


@dataclass(frozen=True)
class ScheduleRow:
    """What is stored of one schedule: its last tick, and its last run (None: not yet, or
    no answer: then `last_error` says why, or the daemon stopped during it)."""

    key: str
    last_due: float
    last_run: float | None
    last_status: int | None
    last_seconds: float | None
    last_error: str | None


class Store:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("pragma journal_mode=wal")
        self.db.execute("pragma synchronous=normal")
        self.db.execute("pragma foreign_keys=on")
        self.schema = migrate(self.db)

    def close(self) -> None:
        self.db.close()

    # identities

    def identity(self, name: str) -> int:
        """The function's identity number (its uid is derived from it): allocated once, kept
        after `rm` so a function created again under the name owns its files again."""
        with self.db:
            self.db.execute("begin immediate")
            row = self.db.execute(
                "select number from identities where function = ?", (name,)
            ).fetchone()
            if row is not None:
                return int(row[0])
            (number,) = self.db.execute(
                "select coalesce(max(number), 0) + 1 from identities"
            ).fetchone()
            self.db.execute("insert into identities values (?, ?)", (name, number))
        return int(number)

    # API tokens (only their SHA-256 is kept)

    def set_file_token(self, token: str) -> None:
        """The admin token of the token file; one that was there before is revoked."""
        with self.db:
            self.db.execute("begin immediate")
            self.db.execute(
                "delete from tokens where id = ? or hash = ?", (FILE_TOKEN, _hash(token))
            )
            self.db.execute(
                "insert into tokens values (?, ?, 'token file', 'admin', ?)",
                (FILE_TOKEN, _hash(token), time.time()),
            )

    def add_token(self, token: str, name: str, scope: str) -> dict[str, Any]:
        created = time.time()
        token_id = self._insert_with_id(
            "insert into tokens values (?, ?, ?, ?, ?)", (_hash(token), name, scope, created)
        )
        return {"id": token_id, "name": name, "scope": scope, "created": created}

    def token_scope(self, token: str) -> str | None:
        """The scope of a valid token; None for any other string."""
        row = self.db.execute("select scope from tokens where hash = ?", (_hash(token),)).fetchone()
        return None if row is None else str(row[0])

    def tokens(self) -> list[dict[str, Any]]:
        rows = self.db.execute("select id, name, scope, created from tokens order by created, id")
        return [{"id": i, "name": n, "scope": s, "created": c} for i, n, s, c in rows]

    def revoke_token(self, token_id: str) -> bool:
        with self.db:
            cursor = self.db.execute("delete from tokens where id = ?", (token_id,))
        return cursor.rowcount > 0

    # invoke keys of private functions (only their SHA-256 is kept)

    def add_key(self, function: str, key: str) -> dict[str, Any]:
        created = time.time()
        key_id = self._insert_with_id(
            "insert into keys (id, function, hash, created) values (?, ?, ?, ?)",
            (function, _hash(key), created),
        )
        return {"id": key_id, "created": created}

    def keys(self, function: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "select id, created from keys where function = ? order by created, id", (function,)
        )
        return [{"id": i, "created": c} for i, c in rows]

    def key_hashes(self, function: str) -> frozenset[str]:
        rows = self.db.execute("select hash from keys where function = ?", (function,))
        return frozenset(h for (h,) in rows)

    def revoke_key(self, function: str, key_id: str) -> bool:
        with self.db:
            cursor = self.db.execute(
                "delete from keys where function = ? and id = ?", (function, key_id)
            )
        return cursor.rowcount > 0

    # secrets, sealed by `hearth.store.vault` before they get here

    def put_secret(self, function: str, key: str, nonce: bytes, sealed: bytes) -> float:
        updated = time.time()
        with self.db:
            self.db.execute(
                "insert or replace into secrets values (?, ?, ?, ?, ?)",
                (function, key, nonce, sealed, updated),
            )
        return updated

    def sealed_secrets(self, function: str | None = None) -> list[tuple[str, str, bytes, bytes]]:
        """(function, key, nonce, sealed value) of one function's secrets, or of all."""
        query = "select function, key, nonce, sealed from secrets"
        rows = (
            self.db.execute(query + " where function = ? order by key", (function,))
            if function is not None
            else self.db.execute(query)
        )
        return [(f, k, bytes(n), bytes(v)) for f, k, n, v in rows]

    def secret_names(self, function: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "select key, updated from secrets where function = ? order by key", (function,)
        )
        return [{"name": k, "updated": u} for k, u in rows]

    def delete_secret(self, function: str, key: str) -> bool:
        with self.db:
            cursor = self.db.execute(
                "delete from secrets where function = ? and key = ?", (function, key)
            )
        return cursor.rowcount > 0

    def _insert_with_id(self, sql: str, values: tuple[Any, ...]) -> str:
        """Insert a row whose first column is a new short id (8 hex digits)."""
        while True:
            new_id = secrets.token_hex(4)
            try:
                with self.db:
                    self.db.execute(sql, (new_id, *values))
            except sqlite3.IntegrityError:
                if self.db.execute(
                    "select 1 from tokens where id = ? union select 1 from keys where id = ?",
                    (new_id, new_id),
                ).fetchone():
                    continue  # the id was taken: draw another
                raise
            return new_id

    # functions and versions

    def functions(self) -> list[tuple[str, int | None]]:
        rows = self.db.execute("select name, active_version from functions order by name")
        return [(name, active) for name, active in rows]

    def active_version(self, name: str) -> int | None:
        row = self.db.execute(
            "select active_version from functions where name = ?", (name,)
        ).fetchone()
        return None if row is None else row[0]

    def exists(self, name: str) -> bool:
        return (
            self.db.execute("select 1 from functions where name = ?", (name,)).fetchone()
            is not None
        )

    def new_version(self, name: str, bundle: str, env: str, spec: dict[str, Any]) -> int:
        """Record a version as 'deploying'; the function is created if new."""
        with self.db:
            self.db.execute("begin immediate")
            self.db.execute(
                "insert or ignore into functions (name, active_version, created) "
                "values (?, null, ?)",
                (name, time.time()),
            )
            (number,) = self.db.execute(
                "select coalesce(max(number), 0) + 1 from versions where function = ?", (name,)
            ).fetchone()
            self.db.execute(
                "insert into versions values (?, ?, ?, ?, ?, 'deploying', null, ?)",
                (name, number, bundle, env, json.dumps(spec), time.time()),
            )
        return int(number)

    def set_specs(self, name: str, specs: dict[int, dict[str, Any]]) -> None:
        """Replace the settings of these versions, in one transaction (`hearth scale`)."""
        with self.db:
            self.db.execute("begin immediate")
            for number, spec in specs.items():
                self.db.execute(
                    "update versions set spec = ? where function = ? and number = ?",
                    (json.dumps(spec), name, number),
                )

    def set_traffic(self, name: str, weights: dict[int, int]) -> None:
        """Record which versions serve, and their shares; the largest share is 'active'."""
        active = max(weights, key=lambda v: (weights[v], v))
        with self.db:
            self.db.execute("begin immediate")
            for number in weights:
                self.db.execute(
                    "update versions set status = 'ready', error = null "
                    "where function = ? and number = ?",
                    (name, number),
                )
            self.db.execute(
                "update functions set active_version = ?, traffic = ? where name = ?",
                (active, json.dumps({str(k): v for k, v in weights.items()}), name),
            )

    def traffic(self, name: str) -> dict[int, int]:
        row = self.db.execute("select traffic from functions where name = ?", (name,)).fetchone()
        if row is None:
            return {}
        return {int(k): int(v) for k, v in json.loads(row[0]).items()}

    def fail_version(self, name: str, number: int, error: str) -> None:
        with self.db:
            self.db.execute(
                "update versions set status = 'failed', error = ? "
                "where function = ? and number = ?",
                (error, name, number),
            )
            # A brand-new function whose first version failed leaves nothing behind.
            self.db.execute(
                "delete from functions where name = ? and active_version is null", (name,)
            )

    def versions(self, name: str) -> list[VersionRow]:
        rows = self.db.execute(
            "select function, number, bundle, env, spec, status, error, created from versions "
            "where function = ? order by number",
            (name,),
        )
        return [VersionRow(r[0], r[1], r[2], r[3], json.loads(r[4]), *r[5:]) for r in rows]

    def version(self, name: str, number: int) -> VersionRow | None:
        return next((v for v in self.versions(name) if v.number == number), None)

    def referenced(self) -> tuple[set[str], set[str]]:
        """The bundles (sha256) and environment keys that some version still refers to.

        Versions left behind by a new function whose first deploy failed (the function row
        is gone) refer to nothing: they can never serve.
        """
        rows = self.db.execute(
            "select bundle, env from versions where function in (select name from functions)"
        ).fetchall()
        return {bundle for bundle, _ in rows}, {env for _, env in rows}

    def remove(self, name: str) -> None:
        with self.db:
            self.db.execute("begin immediate")
            self.db.execute("delete from versions where function = ?", (name,))
            self.db.execute("delete from events where function = ?", (name,))
            self.db.execute("delete from keys where function = ?", (name,))
            self.db.execute("delete from secrets where function = ?", (name,))
            self.db.execute("delete from rollups where function = ?", (name,))
            self.db.execute("delete from schedule_runs where function = ?", (name,))
            self.db.execute("delete from invocations where function = ?", (name,))
            self.db.execute("delete from functions where name = ?", (name,))

    # schedules (hearth.scheduler)

    def schedule_rows(self, function: str) -> dict[str, ScheduleRow]:
        """The stored schedules of a function, by key."""
        rows = self.db.execute(
            "select key, last_due, last_run, last_status, last_seconds, last_error "
            "from schedule_runs where function = ?",
            (function,),
        )
        return {row[0]: ScheduleRow(*row) for row in rows}

    def schedule_tick(self, function: str, key: str, due: float, run: float | None) -> None:
        """Record `due` as the schedule's last tick; with `run` (the time a run starts),
        also that a run started and has no answer yet."""
        with self.db:
            if run is None:
                self.db.execute(
                    "insert into schedule_runs (function, key, last_due) values (?, ?, ?) "
                    "on conflict (function, key) do update set last_due = excluded.last_due",
                    (function, key, due),
                )
            else:
                self.db.execute(
                    "insert or replace into schedule_runs values (?, ?, ?, ?, null, null, null)",
                    (function, key, due, run),
                )

    def schedule_done(
        self, function: str, key: str, status: int | None, seconds: float, error: str | None
    ) -> None:
        """The answer of the run in progress (nothing if the schedule was forgotten since)."""
        with self.db:
            self.db.execute(
                "update schedule_runs set last_status = ?, last_seconds = ?, last_error = ? "
                "where function = ? and key = ?",
                (status, seconds, error, function, key),
            )

    def keep_schedules(self, function: str, keys: set[str]) -> None:
        """Forget the function's schedules but these: one taken out of hearth.toml and put
        back later starts from then, with no runs for the time it was gone."""
        stored = self.schedule_rows(function)
        with self.db:
            for key in stored.keys() - keys:
                self.db.execute(
                    "delete from schedule_runs where function = ? and key = ?", (function, key)
                )

    # events

    def event(self, name: str, kind: str, message: str) -> None:
        with self.db:
            self.db.execute(
                "insert into events (function, time, kind, message) values (?, ?, ?, ?)",
                (name, time.time(), kind, message),
            )

    def add_rollup(self, function: str, point: dict[str, Any]) -> None:
        """A minute of a function's numbers (hearth.metrics.history), kept for the charts."""
        values = tuple(point[c] for c in ROLLUP_COLUMNS)
        with self.db:
            self.db.execute(
                f"insert or replace into rollups (function, {', '.join(ROLLUP_COLUMNS)}) "
                f"values (?, {', '.join('?' * len(ROLLUP_COLUMNS))})",
                (function, *values),
            )

    def rollups(self, function: str, since: float) -> list[dict[str, Any]]:
        rows = self.db.execute(
            f"select {', '.join(ROLLUP_COLUMNS)} from rollups where function = ? and t >= ? "
            "order by t",
            (function, since),
        ).fetchall()
        return [dict(zip(ROLLUP_COLUMNS, row, strict=True)) for row in rows]

    def prune_rollups(self, before: float) -> None:
        with self.db:
            self.db.execute("delete from rollups where t < ?", (before,))

    def events(self, name: str, limit: int = 100, after: int = 0) -> list[dict[str, Any]]:
        """The newest `limit` events of a function (after event id `after`), oldest first."""
        rows = self.db.execute(
            "select id, time, kind, message from events where function = ? and id > ? "
            "order by id desc limit ?",
            (name, after, limit),
        ).fetchall()
        return [{"id": i, "time": t, "kind": k, "message": m} for i, t, k, m in reversed(rows)]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
