import gzip
import io
import os
import tarfile

import pytest

from hearth.builder.bundle import BundleError, extract, pack


def make_tar(*members):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue())


def file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_pack_is_reproducible_and_skips_junk(tmp_path):
    (tmp_path / "main.py").write_text("def handle(r):\n    return 'hi'\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"junk")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "big").write_bytes(b"0" * 1000)
    first = pack(tmp_path)
    os.utime(tmp_path / "main.py", (1, 1))
    assert pack(tmp_path) == first
    out = tmp_path.parent / "out"
    out.mkdir()
    extract(first, out, 10_000)
    assert sorted(p.name for p in out.iterdir()) == ["main.py"]


def test_extracts_files_and_inner_symlinks(tmp_path):
    data = make_tar(file("pkg/a.py", b"A = 1\n"), link("pkg/b.py", "a.py"))
    extract(data, tmp_path, 10_000)
    assert (tmp_path / "pkg" / "b.py").read_text() == "A = 1\n"


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (file("/etc/passwd"), "absolute path"),
        (file("../evil.py"), "contains '..'"),
        (file("a/../../evil.py"), "contains '..'"),
        (link("escape", "../../etc"), "outside the bundle"),
        (link("abs", "/etc/passwd"), "absolute path"),
        (link("hard", "../x", tarfile.LNKTYPE), "outside the bundle"),
    ],
)
def test_rejects_unsafe_members(tmp_path, member, reason):
    with pytest.raises(BundleError, match=reason):
        extract(make_tar(member), tmp_path, 10_000)
    assert list(tmp_path.iterdir()) == []


def test_rejects_devices(tmp_path):
    info = tarfile.TarInfo("dev")
    info.type = tarfile.CHRTYPE
    with pytest.raises(BundleError, match="not a file"):
        extract(make_tar((info, None)), tmp_path, 10_000)


def test_rejects_oversized(tmp_path):
    with pytest.raises(BundleError, match="more than the limit"):
        extract(make_tar(file("big", b"0" * 5000)), tmp_path, 1000)


def test_rejects_garbage(tmp_path):
    with pytest.raises(BundleError, match="not a readable"):
        extract(b"this is not a tarball", tmp_path, 1000)
