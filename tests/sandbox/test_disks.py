"""A function's disk: an ext4 image mounted on its data folder, in a mount namespace of the
daemon's own. Each test runs its steps in a child that enters such a namespace, so no
mount outlives it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hearth.sandbox import disks

pytestmark = pytest.mark.skipif(
    not disks.available(), reason="disks need root, loop devices and e2fsprogs"
)

MiB = 1024**2
UID = 200_123


def in_namespace(functions: Path, steps: str) -> dict:
    """Run `steps` (with `d`, a Disks on `functions`, and `out`, a dict) in a child process
    with a mount namespace of its own; return its `out`."""
    script = (
        textwrap.dedent(
            """
        import json, os, sys
        from pathlib import Path
        from hearth.sandbox.disks import Disks, DiskError, mounted_device, own_namespace
        own_namespace()
        d = Disks(Path(sys.argv[1]))
        out = {}
        """
        )
        + textwrap.dedent(steps)
        + "\nprint(json.dumps(out))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(functions)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_disk_holds_its_size_and_no_more(tmp_path):
    (tmp_path / "fn" / "data").mkdir(parents=True)
    out = in_namespace(
        tmp_path,
        f"""
        d.ready("fn", {32 * MiB}, {UID})
        data = d.folder("fn")
        out["owner"] = os.stat(data).st_uid
        out["mode"] = oct(os.stat(data).st_mode & 0o777)
        written = 0
        try:
            with open(data / "fill", "wb") as fh:
                while True:
                    fh.write(b"x" * 1024 * 1024)
                    written += 1024 * 1024
                    fh.flush()
        except OSError as exc:
            out["error"] = exc.errno
        out["written"] = written
        out["full"] = [d.newly_full("fn"), d.newly_full("fn")]
        os.unlink(data / "fill")
        out["after"] = d.newly_full("fn")
        """,
    )
    assert out["owner"] == UID and out["mode"] == "0o700"
    assert out["error"] == 28  # ENOSPC
    assert 16 * MiB < out["written"] <= 32 * MiB
    assert out["full"] == [True, False]  # reported once
    assert out["after"] is False
    # The image is sparse: what was freed is not held on the host's disk either.
    assert (tmp_path / "fn" / "disk.img").stat().st_size == 32 * MiB


def test_what_the_folder_held_moves_onto_the_disk_and_stays(tmp_path):
    data = tmp_path / "fn" / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "notes.txt").write_text("kept")
    out = in_namespace(
        tmp_path,
        f"""
        d.ready("fn", {32 * MiB}, {UID})
        out["inside"] = (d.folder("fn") / "sub" / "notes.txt").read_text()
        out["mounted"] = mounted_device(d.folder("fn")) is not None
        out["listing"] = sorted(os.listdir(d.folder("fn")))
        """,
    )
    assert out == {"inside": "kept", "mounted": True, "listing": ["lost+found", "sub"]}
    assert list(data.iterdir()) == []  # beneath the mount, outside the namespace: moved
    out = in_namespace(  # a later daemon mounts the same disk again
        tmp_path,
        f"""
        d.ready("fn", {32 * MiB}, {UID})
        out["inside"] = (d.folder("fn") / "sub" / "notes.txt").read_text()
        """,
    )
    assert out == {"inside": "kept"}


def test_a_disk_grows_and_refuses_to_shrink(tmp_path):
    (tmp_path / "fn" / "data").mkdir(parents=True)
    out = in_namespace(
        tmp_path,
        f"""
        d.ready("fn", {32 * MiB}, {UID})
        (d.folder("fn") / "kept").write_text("yes")
        out["before"] = os.statvfs(d.folder("fn")).f_blocks
        d.ready("fn", {64 * MiB}, {UID})  # in use: grown in place, or noted for later
        out["notes"] = d.notes
        out["online"] = os.statvfs(d.folder("fn")).f_blocks
        try:
            d.check("fn", {32 * MiB})
        except DiskError as exc:
            out["shrink"] = str(exc)
        d.ready("fn", {32 * MiB}, {UID})  # an older version, rolled back to: keeps the disk
        out["old"] = os.statvfs(d.folder("fn")).f_blocks
        d.release("fn")
        out["released"] = mounted_device(d.folder("fn")) is None
        d.ready("fn", {64 * MiB}, {UID})  # mounted again: grown by now either way
        out["after"] = os.statvfs(d.folder("fn")).f_blocks
        out["kept"] = (d.folder("fn") / "kept").read_text()
        """,
    )
    grown_online = out["online"] > out["before"] * 1.8
    assert grown_online != bool(out["notes"])  # a disk not grown in place says so
    assert all("next mounted" in note for _, note in out["notes"])
    assert out["after"] > out["before"] * 1.8
    assert out["old"] == out["online"]
    assert out["kept"] == "yes"
    assert "only grows" in out["shrink"] and "64MiB" in out["shrink"]
    assert out["released"] is True
    assert disks.filesystem_size(tmp_path / "fn" / "disk.img") == 64 * MiB
