"""The state database's numbered schema steps."""

import sqlite3

import pytest

from hearth.store import Store
from hearth.store.migrations import LATEST, SchemaError, migrate

# The schema as it was before steps were numbered, before scoped tokens and traffic splits.
ANCIENT = """
create table functions (name text primary key, active_version integer, created real not null);
create table tokens (id text primary key, hash text not null, created real not null);
insert into functions values ('old', 3, 1.0);
insert into tokens values ('file', 'x', 1.0);
"""


def test_a_new_database_takes_every_step(tmp_path):
    store = Store(tmp_path / "hearth.db")
    assert store.schema == LATEST
    assert store.db.execute("pragma user_version").fetchone() == (LATEST,)
    assert store.rollups("f", 0) == []  # each step's table is there
    assert store.schedule_rows("f") == {}
    assert store.db.execute("select count(*) from invocations").fetchone() == (0,)
    store.close()


def test_an_unnumbered_database_is_brought_up_to_date(tmp_path):
    db = sqlite3.connect(tmp_path / "hearth.db")
    db.executescript(ANCIENT)
    db.close()
    store = Store(tmp_path / "hearth.db")
    assert store.functions() == [("old", 3)]
    assert store.traffic("old") == {}  # the column added with its default
    assert store.token_scope("anything") is None  # tokens made again, scoped
    store.set_file_token("t")
    assert store.token_scope("t") == "admin"
    store.close()


def test_taking_the_steps_again_changes_nothing(tmp_path):
    store = Store(tmp_path / "hearth.db")
    store.close()
    db = sqlite3.connect(tmp_path / "hearth.db", isolation_level=None)
    assert migrate(db) == LATEST
    db.close()


def test_a_newer_database_is_refused(tmp_path):
    db = sqlite3.connect(tmp_path / "hearth.db")
    db.execute(f"pragma user_version = {LATEST + 1}")
    db.close()
    with pytest.raises(SchemaError, match="from a newer Hearth"):
        Store(tmp_path / "hearth.db")


def test_schedule_runs_are_kept_per_function_until_it_is_removed(tmp_path):
    store = Store(tmp_path / "hearth.db")
    store.new_version("f", "sha", "base", {"name": "f"})
    store.schedule_tick("f", "every 1m POST /", 100.0, None)
    store.schedule_tick("f", "every 1m POST /", 160.0, 160.5)  # a run starts
    store.schedule_done("f", "every 1m POST /", 200, 0.25, None)
    store.schedule_tick("f", "0 3 * * * GET /x", 50.0, None)
    row = store.schedule_rows("f")["every 1m POST /"]
    assert (row.last_due, row.last_run, row.last_status, row.last_seconds) == (
        160.0,
        160.5,
        200,
        0.25,
    )
    store.schedule_tick("f", "every 1m POST /", 220.0, None)  # a skipped tick keeps the last run
    assert store.schedule_rows("f")["every 1m POST /"].last_status == 200
    store.keep_schedules("f", {"0 3 * * * GET /x"})
    assert set(store.schedule_rows("f")) == {"0 3 * * * GET /x"}
    store.remove("f")
    assert store.schedule_rows("f") == {}
    store.close()
