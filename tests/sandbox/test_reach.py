"""The daemon's hands in a function's data folder: never led out of it by a link."""

import os

import pytest

from hearth.sandbox import reach


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "data"
    (folder / "db").mkdir(parents=True)
    (folder / "db" / "notes.txt").write_text("mine\n")
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "shadow").write_text("not yours\n")
    os.symlink(secret / "shadow", folder / "link-to-file")
    os.symlink(secret, folder / "link-to-folder")
    return folder


def test_lists_and_reads_what_is_inside(root):
    entries = {e.name: e.kind for e in reach.listing(str(root), "")}
    assert entries == {"db": "dir", "link-to-file": "link", "link-to-folder": "link"}
    assert [e.name for e in reach.listing(str(root), "db/")] == ["notes.txt"]
    assert reach.listing(str(root), "db/notes.txt") is None  # a file
    assert reach.read(str(root), "db/notes.txt", 100) == b"mine\n"


@pytest.mark.parametrize(
    "path",
    ["link-to-file", "link-to-folder/shadow", "../outside/shadow", "db/../../outside/shadow"],
)
def test_links_and_dots_never_lead_out(root, path):
    with pytest.raises(reach.ReachError):
        reach.read(str(root), path, 100)


def test_missing_and_too_large(root):
    with pytest.raises(reach.Missing):
        reach.read(str(root), "db/nothing", 100)
    with pytest.raises(reach.Missing):
        reach.listing(str(root), "nowhere/else")
    with pytest.raises(reach.ReachError, match="over 3 bytes"):
        reach.read(str(root), "db/notes.txt", 3)


def test_writes_replace_whole_and_never_through_a_link(root, tmp_path):
    reach.write(str(root), "n" * 255, b"longest name", None)
    reach.write(str(root), "new/deep/file.bin", b"\x00\x01", None)
    assert (root / "new" / "deep" / "file.bin").read_bytes() == b"\x00\x01"
    reach.write(str(root), "link-to-file", b"replaced", None)  # the link, not its target
    assert not (root / "link-to-file").is_symlink()
    assert (tmp_path / "outside" / "shadow").read_text() == "not yours\n"
    with pytest.raises(reach.ReachError):
        reach.write(str(root), "link-to-folder/planted", b"x", None)
    assert not (tmp_path / "outside" / "planted").exists()
    assert not [p for p in root.rglob("*") if p.name.startswith(".hearth-upload")]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files away needs root")
def test_what_is_written_belongs_to_the_function(root):
    reach.write(str(root), "sub/owned", b"x", 54321)
    assert (root / "sub").stat().st_uid == 54321
    assert (root / "sub" / "owned").stat().st_uid == 54321
