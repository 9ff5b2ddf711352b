"""A function's data (HEARTH_DATA) outlives its versions and its removal, until purged."""

from __future__ import annotations

import json
import shutil

from tests.e2e.conftest import EXAMPLES

NOTEBOOK = """
import os

PATH = os.path.join(os.environ["HEARTH_DATA"], "notes.txt")

def handle(request):
    note = request.query_params.get("add")
    if note:
        with open(PATH, "a") as fh:
            fh.write(note + "\\n")
    try:
        with open(PATH) as fh:
            return fh.read()
    except FileNotFoundError:
        return ""
"""


def removal(daemon, name, *extra):
    result = daemon.cli("rm", name, "--json", *extra)
    return result.returncode, (json.loads(result.stdout) if result.returncode == 0 else None)


def test_data_is_kept_across_versions_and_removal_until_purged(daemon, fn_dir):
    folder = fn_dir("notebook", {"main.py": NOTEBOOK})
    daemon.deploy(folder)
    assert daemon.get("/fn/notebook/?add=first").text == "first\n"
    (folder / "main.py").write_text(NOTEBOOK + "\n# v2\n")
    daemon.deploy(folder)  # a new version sees the same data
    assert daemon.get("/fn/notebook/?add=second").text == "first\nsecond\n"
    daemon.cli("rollback", "notebook", check=True)
    assert daemon.get("/fn/notebook/").text == "first\nsecond\n"

    code, kept = removal(daemon, "notebook")
    assert code == 0 and kept["purged"] is False
    assert kept["data"].endswith("/functions/notebook")
    human = daemon.cli("rm", "notebook")  # gone already: nothing to remove
    assert human.returncode != 0 and "notebook" in human.stderr
    daemon.deploy(folder)  # made again under the name: its data is back
    assert daemon.get("/fn/notebook/").text == "first\nsecond\n"

    printed = daemon.cli("rm", "notebook", check=True).stdout
    assert "its data is kept in" in printed and "--purge" in printed
    code, purged = removal(daemon, "notebook", "--purge")  # what the removed one left
    assert code == 0 and purged == {"removed": "notebook", "data": None, "purged": True}
    assert not (daemon.data_dir / "functions" / "notebook").exists()
    daemon.deploy(folder)
    assert daemon.get("/fn/notebook/").text == ""  # a fresh start
    code, purged = removal(daemon, "notebook", "--purge")
    assert code == 0 and purged["data"] is None
    assert removal(daemon, "notebook", "--purge")[0] != 0  # nothing left: 404


def test_hearth_data_looks_into_the_folder(daemon, fn_dir, tmp_path):
    daemon.deploy(fn_dir("diary", {"main.py": NOTEBOOK}))
    assert daemon.get("/fn/diary/?add=written-by-the-function").status_code == 200
    listing = json.loads(daemon.cli("data", "diary", "ls", "--json", check=True).stdout)
    names = {e["name"] for e in listing["entries"]} - {"lost+found"}  # ext4's own, if a disk
    assert names == {"notes.txt"}
    got = daemon.cli("data", "diary", "get", "notes.txt", check=True).stdout
    assert got == "written-by-the-function\n"
    upload = tmp_path / "notes.txt"
    upload.write_text("from the operator\n")
    daemon.cli("data", "diary", "put", "notes.txt", str(upload), check=True)
    # owned by the function: it reads and appends to what was put
    assert daemon.get("/fn/diary/?add=again").text == "from the operator\nagain\n"
    daemon.cli("data", "diary", "put", "sub/dir/x.bin", str(upload), check=True)
    table = daemon.cli("data", "diary", "ls", "sub/dir", check=True).stdout
    assert "x.bin" in table
    refused = daemon.cli("data", "diary", "get", "../../hearth.db")
    assert refused.returncode != 0 and "path" in refused.stderr
    assert daemon.cli("data", "diary", "get", "nothing.txt").returncode != 0
    assert daemon.cli("data", "nobody", "ls").returncode != 0


def test_a_django_projects_database_in_hearth_data_keeps_its_rows_across_deploys(daemon, tmp_path):
    project = tmp_path / "django-notes"
    shutil.copytree(EXAMPLES / "django-notes", project)
    daemon.cli("deploy", str(project), check=True, timeout=600)
    for text in ("first", "second"):
        assert daemon.request("POST", "/fn/django-notes/", content=text).status_code == 200
    listed = daemon.cli("data", "django-notes", "ls", check=True).stdout
    assert "db.sqlite3" in listed  # in the function's data folder, not in its code
    # a new version (new code folder), then a rollback: the rows are the same rows
    (project / "notes" / "views.py").write_text(
        (project / "notes" / "views.py").read_text() + "\n# v2\n"
    )
    assert daemon.deploy(project)["version"] == 2
    assert daemon.get("/fn/django-notes/").json() == {"notes": ["first", "second"]}
    daemon.request("POST", "/fn/django-notes/", content="third")
    daemon.cli("rollback", "django-notes", check=True)
    assert daemon.get("/fn/django-notes/").json() == {"notes": ["first", "second", "third"]}
