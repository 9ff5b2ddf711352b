"""Backups taken while serving, restored into a new data directory that serves the same;
a damaged archive refused."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from collections import Counter

import httpx
import pytest

from tests.e2e.conftest import Daemon, wait_for


def restore(archive, data_dir) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hearth.cli.main",
            "restore",
            str(archive),
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


LEDGER = """
import os, sqlite3

DB = os.path.join(os.environ["HEARTH_DATA"], "ledger.db")

def handle(request):
    db = sqlite3.connect(DB)
    db.execute("pragma journal_mode=wal")
    db.execute("create table if not exists entries (note text)")
    note = request.query_params.get("add")
    if note:
        with db:
            db.execute("insert into entries values (?)", (note,))
    rows = [r[0] for r in db.execute("select note from entries order by rowid")]
    db.close()
    return {"entries": rows, "greeting": os.environ.get("GREETING"), "v": 1}
"""


def test_a_backup_restores_into_a_new_directory_that_serves_the_same(
    fresh_daemon, fn_dir, tmp_path
):
    daemon = fresh_daemon.start()
    folder = fn_dir("ledger", {"main.py": LEDGER})
    daemon.deploy(folder)
    with daemon.api_client() as api:
        api.put("/v1/functions/ledger/secrets/GREETING", json={"value": "hi"})
    for note in ("one", "two", "three"):
        daemon.get(f"/fn/ledger/?add={note}")
    (folder / "main.py").write_text(LEDGER.replace('"v": 1', '"v": 2'))
    daemon.deploy(folder)
    daemon.cli("traffic", "ledger", "1=50", "2=50", check=True)
    daemon.cli("data", "ledger", "put", "plain/readme.txt", str(folder / "main.py"), check=True)
    before = daemon.get("/fn/ledger/").json()
    archive = tmp_path / "backup.tar.gz"
    statuses: Counter[int] = Counter()
    done = threading.Event()

    def load() -> None:  # requests all through the backup: none may fail
        with httpx.Client(timeout=30) as client:
            while not done.is_set():
                statuses[client.get(f"{daemon.gateway}/fn/ledger/").status_code] += 1

    loader = threading.Thread(target=load)
    loader.start()
    try:
        printed = daemon.cli("backup", str(archive), check=True).stdout
    finally:
        done.set()
        loader.join()
    assert set(statuses) == {200} and statuses[200] > 0, statuses
    assert "wrote" in printed and archive.stat().st_mode & 0o777 == 0o600
    after = daemon.get("/fn/ledger/?add=after-the-backup")  # not in the archive
    assert after.json()["entries"][-1] == "after-the-backup"  # its files are still its own
    assert daemon.stop() == 0

    restored = tmp_path / "restored"
    done = restore(archive, restored)
    assert done.returncode == 0 and "ledger" in done.stdout, done.stderr
    again = Daemon(restored).start()
    try:
        assert again.status("ledger")["traffic"] == {"1": 50, "2": 50}
        answers = [again.get("/fn/ledger/").json() for _ in range(40)]
        assert Counter(a["v"] for a in answers).keys() == {1, 2}
        for answer in answers:  # the data and the secret, as they were at the backup
            assert answer["entries"] == before["entries"] == ["one", "two", "three"]
            assert answer["greeting"] == "hi"
        # the function owns its restored data: it goes on writing it
        assert again.get("/fn/ledger/?add=four").json()["entries"][-1] == "four"
        assert again.cli("data", "ledger", "get", "plain/readme.txt", check=True).stdout
        assert {"deploy", "traffic"} <= {e["kind"] for e in again.events("ledger")}
    finally:
        assert again.stop() == 0

    refused = restore(archive, restored)
    assert refused.returncode != 0 and "not empty" in refused.stderr


def test_a_damaged_archive_is_refused_and_nothing_written(fresh_daemon, fn_dir, tmp_path):
    daemon = fresh_daemon.start()
    daemon.deploy(fn_dir("small", {"main.py": "def handle(request):\n    return 'ok'\n"}))
    archive = tmp_path / "whole.tar.gz"
    daemon.cli("backup", str(archive), check=True)
    assert daemon.stop() == 0
    data = archive.read_bytes()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(data[: len(data) // 2])
    result = restore(truncated, tmp_path / "a")
    assert result.returncode != 0 and "truncated or corrupt" in result.stderr
    assert not (tmp_path / "a").exists()
    # one byte changed inside a member: the checksums catch it
    with tarfile.open(archive, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(tampered, "w:gz") as tar:
        for member, content in members:
            if member.name.startswith("bundles/"):
                content = gzip.compress(b"something else")
                member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
    result = restore(tampered, tmp_path / "b")
    assert result.returncode != 0 and "does not match its manifest" in result.stderr
    assert not (tmp_path / "b").exists()


def test_scheduled_backups_rotate_and_say_so(tmp_path, fn_dir):
    folder = tmp_path / "kept-backups"
    args = ("--backup-every", "1s", "--backup-keep", "2", "--backup-dir", str(folder))
    daemon = Daemon(tmp_path / "data", *args).start()
    try:
        daemon.deploy(fn_dir("watched", {"main.py": "def handle(request):\n    return 'ok'\n"}))

        def taken():
            return [e for e in daemon.events("watched") if e["kind"] == "backup"]

        events = wait_for(lambda: len(r := taken()) >= 3 and r, timeout=60, what="3 backups")
        assert any("older removed (keeping 2)" in e["message"] for e in events)
        assert len(list(folder.glob("hearth-*.tar.gz"))) <= 2
        newest = sorted(folder.glob("hearth-*.tar.gz"))[-1]
        assert restore(newest, tmp_path / "from-schedule").returncode == 0
    finally:
        assert daemon.stop() == 0


def test_a_failed_scheduled_backup_is_an_event_with_its_reason(tmp_path, fn_dir):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the backups should go")
    args = ("--backup-every", "1s", "--backup-dir", str(blocker))
    daemon = Daemon(tmp_path / "data", *args).start()
    try:
        daemon.deploy(fn_dir("watched", {"main.py": "def handle(request):\n    return 'ok'\n"}))
        failed = wait_for(
            lambda: [e for e in daemon.events("watched") if e["kind"] == "backup-failed"],
            timeout=60,
            what="a failed backup's event",
        )
        assert "not-a-folder" in failed[0]["message"]
        assert daemon.get("/fn/watched/").text == "ok"  # serving goes on
    finally:
        assert daemon.stop() == 0


def test_a_backup_reads_a_functions_data_only_as_that_function(fresh_daemon, fn_dir, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: without it there is no uid per function to read as")
    daemon = fresh_daemon.start()
    daemon.deploy(fn_dir("tenant", {"main.py": LEDGER}))
    daemon.get("/fn/tenant/?add=kept")
    data = daemon.function_data("tenant")
    # put there by root, closed to the function: a backup made as root would take it
    (data / "not-yours.txt").write_text("root's own")
    os.chmod(data / "not-yours.txt", 0o600)
    archive = tmp_path / "backup.tar.gz"
    daemon.cli("backup", str(archive), check=True)
    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert "data/tenant/ledger.db" in names
    assert "data/tenant/not-yours.txt" not in names
    assert any("not-yours.txt" in line for line in manifest["skipped"]), manifest["skipped"]
