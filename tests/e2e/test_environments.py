"""Functions with requirements.txt (their own venv, cached) and the PostgreSQL example."""

import os
import shutil

import pytest

from tests.e2e.conftest import EXAMPLES

PG = os.environ.get("HEARTH_TEST_PG")


def test_flask_notes_builds_its_environment_once(daemon, tmp_path):
    first = daemon.cli("deploy", str(EXAMPLES / "flask-notes"), check=True, timeout=600)
    assert "building environment" in first.stderr
    created = daemon.request("POST", "/fn/flask-notes/", content=b"remember the milk")
    assert created.status_code == 201
    notes = daemon.get("/fn/flask-notes/").json()
    assert notes["notes"] == ["remember the milk"]
    assert notes["pid"] == created.json()["pid"]
    # Another function with the same requirements reuses the environment at once.
    twin = tmp_path / "notes-twin"
    shutil.copytree(EXAMPLES / "flask-notes", twin)
    (twin / "hearth.toml").write_text('name = "notes-twin"\n')
    second = daemon.cli("deploy", str(twin), check=True)
    assert "building environment" not in second.stderr
    assert daemon.get("/fn/notes-twin/").json()["notes"] == []
    assert daemon.status("notes-twin")["env"] == daemon.status("flask-notes")["env"]


def test_broken_requirements_fail_the_deploy_clearly(daemon, fn_dir):
    folder = fn_dir(
        "unbuildable",
        {
            "main.py": "def handle(r):\n    return 'x'\n",
            "requirements.txt": "this-package-does-not-exist-hearth-test==0.0.1\n",
        },
    )
    result = daemon.cli("deploy", str(folder), timeout=600)
    assert result.returncode == 1
    assert "installing requirements.txt failed" in result.stderr
    assert daemon.get("/fn/unbuildable/").status_code == 404


@pytest.mark.skipif(not PG, reason="set HEARTH_TEST_PG to a PostgreSQL DSN to run this")
def test_pg_visits_keeps_its_pool_warm(daemon, tmp_path):
    folder = tmp_path / "pg-visits"
    shutil.copytree(EXAMPLES / "pg-visits", folder)
    (folder / "hearth.toml").write_text(f'name = "pg-visits"\n[env]\nDATABASE_URL = "{PG}"\n')
    daemon.deploy(folder)
    counts = [daemon.get("/fn/pg-visits/").json() for _ in range(5)]
    values = [c["visits"] for c in counts]
    assert values == list(range(values[0], values[0] + 5))
    assert len({c["pid"] for c in counts}) == 1
    assert daemon.get("/fn/pg-visits/ping").json() == {"ok": True}


@pytest.mark.skipif(not PG, reason="set HEARTH_TEST_PG to a PostgreSQL DSN to run this")
def test_pg_visits_with_bad_dsn_keeps_previous(daemon, tmp_path):
    folder = tmp_path / "pg-bad"
    shutil.copytree(EXAMPLES / "pg-visits", folder)
    good = f'name = "pg-bad"\n[env]\nDATABASE_URL = "{PG}"\n'
    (folder / "hearth.toml").write_text(good)
    daemon.deploy(folder)
    (folder / "hearth.toml").write_text(
        'name = "pg-bad"\n[env]\nDATABASE_URL = "postgresql://nobody@127.0.0.1:1/none"\n'
    )
    result = daemon.cli("deploy", str(folder), timeout=120)
    assert result.returncode == 1
    assert "keeps serving" in result.stderr
    assert daemon.get("/fn/pg-bad/ping").json() == {"ok": True}
