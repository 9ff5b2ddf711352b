"""Choosing the layers and building a function's policy: pure, no process needed."""

import os

import pytest

from hearth.sandbox.mounts import cover_root, outermost
from hearth.sandbox.plan import (
    UID_BASE,
    Host,
    Layers,
    Planner,
    SandboxUnavailable,
    layers,
    runtime_paths,
)

FULL = Host(root=True, landlock=7, seccomp=True, disks=True)
BARE = Host(root=False, landlock=0, seccomp=False)


def test_auto_takes_what_the_host_offers():
    assert layers("auto", FULL) == Layers(True, True, 7, True, True)
    assert layers("auto", BARE) == Layers(False, False, 0, False)
    assert layers("auto", Host(False, 3, True)) == Layers(False, False, 3, True)
    assert layers("auto", Host(True, 7, True, disks=False)) == Layers(True, True, 7, True)


def test_off_is_off_and_says_so():
    chosen = layers("off", FULL)
    assert chosen == Layers(False, False, 0, False)
    assert "OFF" in chosen.describe()


def test_strict_refuses_a_host_that_lacks_a_layer():
    assert layers("strict", FULL) == Layers(True, True, 7, True, True)
    with pytest.raises(SandboxUnavailable, match="Landlock"):
        layers("strict", Host(True, 0, True, True))
    with pytest.raises(SandboxUnavailable, match="root"):
        layers("strict", Host(False, 7, True, True))
    with pytest.raises(SandboxUnavailable, match="e2fsprogs"):
        layers("strict", Host(True, 7, True, False))


def test_unknown_level():
    with pytest.raises(ValueError, match="off, auto, strict"):
        layers("paranoid", FULL)


def test_describe_names_each_layer():
    text = Layers(True, True, 7, True, True).describe()
    assert text == (
        "uid per function, private mounts (own /tmp, /proc hidepid), landlock v7, seccomp, "
        "a disk per function (ext4 image)"
    )


def test_runtime_paths_never_include_a_folder_holding_the_data_dir(tmp_path, monkeypatch):
    data = tmp_path / "project" / ".hearth"
    data.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path / "project"))  # like `python -m` from there
    paths = runtime_paths(data)
    assert str((tmp_path / "project").resolve()) not in paths
    assert all(not str(data.resolve()).startswith(p + "/") for p in paths)


@pytest.mark.skipif(os.geteuid() != 0, reason="the function's folders are given to its uid")
def test_policy_of_a_function(tmp_path):
    planner = Planner(tmp_path, tmp_path / "run", layers("auto", FULL))
    (tmp_path / "run").mkdir()
    policy = planner.policy("fn", 3, tmp_path / "code" / "abc", tmp_path / "envs" / "e")
    places = planner.places("fn", None)  # what policy() made ready
    assert policy.uid == policy.gid == UID_BASE + 3
    assert str(tmp_path / "code" / "abc") in policy.read
    assert str(tmp_path / "envs" / "e") in policy.read
    assert str(places.data) in policy.write and str(places.sockets) in policy.write
    assert str(tmp_path) not in policy.read + policy.write  # never the whole data dir
    assert policy.env["HEARTH_DATA"] == str(places.data) == policy.env["HOME"]
    assert policy.env["TMPDIR"] == "/tmp"  # private with mounts
    assert set(policy.env) == {"PATH", "LANG", "MALLOC_ARENA_MAX", "HOME", "TMPDIR", "HEARTH_DATA"}


def test_outermost_and_cover_root():
    assert outermost(["/a/b", "/ab", "/a/b/c", "/a/b/"]) == ["/a/b", "/ab"]
    assert cover_root("/tmp/x/y") == "/tmp"  # /tmp is made private, then refilled
    assert cover_root("/usr/lib/python3") is None  # reachable as it is
