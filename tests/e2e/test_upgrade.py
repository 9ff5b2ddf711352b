"""A data directory made by an earlier release opens and serves after an upgrade: each
fixture under tests/fixtures/datadir-schema-N was made by the release whose state database
had schema N (tests/fixtures/make_datadir.py), and stays as it was made."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from hearth.store.migrations import LATEST
from tests.e2e.conftest import Daemon

FIXTURES = sorted((Path(__file__).resolve().parents[1] / "fixtures").glob("datadir-schema-*"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_an_earlier_data_directory_serves_after_upgrade(fixture, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(fixture, data)
    schema = int(fixture.name.rsplit("-", 1)[1])
    if schema >= 4:  # as if made now: its finished invocation is not yet past its keep
        with sqlite3.connect(data / "hearth.db") as db:
            db.execute("update invocations set expires = expires + ? - updated", (time.time(),))
    daemon = Daemon(data).start()
    try:
        status = daemon.status("keeper")
        assert status["traffic"] == {"1": 30, "2": 70}
        assert [v["number"] for v in status["versions"]] == [1, 2]
        answers = Counter(daemon.get("/fn/keeper/").text for _ in range(60))
        # both versions serve, v2 with its secret (sealed with the key kept beside it)
        assert set(answers) == {"kept v1", "kept v2 hello"}, answers
        kinds = {e["kind"] for e in daemon.events("keeper")}
        assert {"deploy", "traffic"} <= kinds  # the history came along
        if schema >= 3:  # v2's schedule, and its last tick
            listed = daemon.cli("schedules", "keeper", "--json", check=True).stdout
            assert [(s["every"], s["path"]) for s in json.loads(listed)] == [(3600.0, "/")]
        if schema >= 4:  # the asynchronous invocation it ran, and its result
            with daemon.api_client() as api:
                kept = api.get("/v1/functions/keeper/invocations").json()
                assert len(kept) == 1, kept
                shown = api.get(f"/v1/invocations/{kept[0]['id']}").json()
                assert shown["status"] == "done" and shown["result"]["status"] == 200
    finally:
        assert daemon.stop() == 0
    with sqlite3.connect(data / "hearth.db") as db:
        assert db.execute("pragma user_version").fetchone() == (LATEST,)


def test_there_is_a_fixture_of_this_schema():
    """A release that changes the schema adds its own fixture (make_datadir.py)."""
    assert any(f.name == f"datadir-schema-{LATEST}" for f in FIXTURES)
