"""The state database's schema, as numbered steps. `pragma user_version` records the last
step a database has taken; opening one takes the steps after it, each in a transaction
with its new number, so a data directory from any earlier release of Hearth opens
(and a crash mid-upgrade leaves the database at the last step it finished).

A step is never edited once released: a change to the schema is a new step at the end.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


class SchemaError(RuntimeError):
    """The database is from a newer Hearth than this one."""


def _baseline(db: sqlite3.Connection) -> None:
    """The schema before versions were numbered (every table `if not exists`, so a data
    directory from then takes this step as well as an empty one), with the two upgrades
    that were then made by looking at the columns."""
    columns = {row[1] for row in db.execute("pragma table_info(tokens)")}
    if columns and "scope" not in columns:
        # From before scoped tokens: it only ever held the token file's admin token,
        # which is written again at every start.
        db.execute("drop table tokens")
    for statement in BASELINE.split(";"):
        if statement.strip():
            db.execute(statement)
    columns = {row[1] for row in db.execute("pragma table_info(functions)")}
    if "traffic" not in columns:  # from before traffic splits
        db.execute("alter table functions add column traffic text not null default '{}'")


def _rollups(db: sqlite3.Connection) -> None:
    """A minute of each function's numbers, kept 7 days for the dashboard's charts."""
    db.execute(
        """create table if not exists rollups (
            function text not null,
            t integer not null,
            seconds integer not null,
            requests integer not null,
            errors integer not null,
            p50 real not null,
            p99 real not null,
            instances integer not null,
            in_flight integer not null,
            queued integer not null,
            memory integer not null,
            primary key (function, t)
        )"""
    )


def _schedule_runs(db: sqlite3.Connection) -> None:
    """Each schedule's last tick and run (hearth.scheduler), written before each run: a
    tick runs at most once, across restarts too. `key` is the schedule's timing, method
    and path (hearth.spec.Schedule.key)."""
    db.execute(
        """create table if not exists schedule_runs (
            function text not null,
            key text not null,
            last_due real not null,
            last_run real,
            last_status integer,
            last_seconds real,
            last_error text,
            primary key (function, key)
        )"""
    )


def _invocations(db: sqlite3.Connection) -> None:
    """Asynchronous invocations (hearth.invocations): each request as it was accepted, its
    state, attempts and, once finished, its result until `expires`."""
    db.execute(
        """create table if not exists invocations (
            id text primary key,
            function text not null,
            status text not null,
            method text not null,
            url text not null,
            headers text not null,
            body blob not null,
            request_id text not null,
            callback text,
            callback_state text,
            attempts integer not null default 0,
            created real not null,
            updated real not null,
            next_try real,
            expires real,
            last_error text,
            result_status integer,
            result_headers text,
            result_body blob,
            result_truncated integer not null default 0
        )"""
    )
    db.execute(
        "create index if not exists invocations_queue on invocations (status, function, next_try)"
    )
    db.execute(
        "create index if not exists invocations_by_function on invocations (function, created)"
    )
    db.execute(
        "create index if not exists invocations_expiry on invocations (expires) "
        "where expires is not null"
    )


# Step N is STEPS[N - 1].
STEPS: list[Callable[[sqlite3.Connection], None]] = [
    _baseline,
    _rollups,
    _schedule_runs,
    _invocations,
]
LATEST = len(STEPS)


def migrate(db: sqlite3.Connection) -> int:
    """Take the steps the database has not taken; its schema number after."""
    (version,) = db.execute("pragma user_version").fetchone()
    if version > LATEST:
        raise SchemaError(
            f"the state database is at schema {version}, from a newer Hearth (this one knows "
            f"up to {LATEST}): run that version, or restore a backup made for this one"
        )
    for number in range(version + 1, LATEST + 1):
        with db:
            db.execute("begin immediate")
            STEPS[number - 1](db)
            db.execute(f"pragma user_version = {number}")
    return LATEST


BASELINE = """
create table if not exists functions (
    name text primary key,
    active_version integer,
    created real not null,
    traffic text not null default '{}'
);
create table if not exists versions (
    function text not null,
    number integer not null,
    bundle text not null,
    env text not null,
    spec text not null,
    status text not null,
    error text,
    created real not null,
    primary key (function, number)
);
create table if not exists events (
    id integer primary key autoincrement,
    function text not null,
    time real not null,
    kind text not null,
    message text not null
);
create table if not exists identities (
    function text primary key,
    number integer not null unique
);
create table if not exists tokens (
    id text primary key,
    hash text not null unique,
    name text not null,
    scope text not null,
    created real not null
);
create table if not exists keys (
    function text not null,
    id text not null,
    hash text not null unique,
    created real not null,
    primary key (function, id)
);
create table if not exists secrets (
    function text not null,
    key text not null,
    nonce blob not null,
    sealed blob not null,
    updated real not null,
    primary key (function, key)
);
"""
