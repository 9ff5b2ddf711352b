"""A data directory made by an earlier release opens and serves after an upgrade: each
fixture under tests/fixtures/datadir-schema-N was made by the release whose state database
had schema N (tests/fixtures/make_datadir.py), and stays as it was made."""

from __future__ import annotations

import shutil
import sqlite3
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
        # Asynchronous invocations, from schema 3 on (a finished one is swept a day after
        # the fixture was made: whatever is still kept reads back).
        with daemon.api_client() as api:
            kept = api.get("/v1/functions/keeper/invocations").json()
            for invocation in kept:
                shown = api.get(f"/v1/invocations/{invocation['id']}").json()
                assert shown["status"] == "done" and shown["result"]["status"] == 200
    finally:
        assert daemon.stop() == 0
    with sqlite3.connect(data / "hearth.db") as db:
        assert db.execute("pragma user_version").fetchone() == (LATEST,)


def test_there_is_a_fixture_of_this_schema():
    """A release that changes the schema adds its own fixture (make_datadir.py)."""
    assert any(f.name == f"datadir-schema-{LATEST}" for f in FIXTURES)
