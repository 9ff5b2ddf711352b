import asyncio
import gzip
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from hearth.builder.bundle import BundleError, check_members, pack, read_small_text
from hearth.builder.envs import EnvBuilder
from hearth.builder.unpack import EXIT_NO_MEMORY, EXIT_REFUSED, Limits, extract, scan_stream
from hearth.config import DaemonConfig
from hearth.control.rollout import Rollouts
from hearth.store import BundleStore, Store
from hearth.store.bundles import explain_exit, run_child, unpack


def make_tar(*members, fmt=tarfile.PAX_FORMAT):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue())


def file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def folder(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


def link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def header(name, kind=tarfile.REGTYPE, size=0):
    """One raw ustar header block: what a hostile archive can declare without the data."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def pax_block(records: dict[str, str], kind=tarfile.XHDTYPE) -> bytes:
    body = b"".join(_pax_record(k, v) for k, v in records.items())
    padding = bytes(-len(body) % 512)
    return header("././@PaxHeader", kind, len(body)) + body + padding


def _pax_record(key: str, value: str) -> bytes:
    text = f" {key}={value}\n".encode()
    length = len(text) + len(str(len(text)))
    length = len(text) + len(str(length))
    return str(length).encode() + text


def unpack_bytes(data: bytes, tmp_path: Path, limits: Limits | int = 10_000) -> Path:
    """Extract in this process (what the child does), into tmp_path/out."""
    if isinstance(limits, int):
        limits = Limits(limits)
    archive = tmp_path / "bundle.tar.gz"
    archive.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    extract(archive, out, limits)
    return out


def scan(data: bytes, limits: Limits | int = 10_000):
    return scan_stream(io.BytesIO(data), Limits(limits) if isinstance(limits, int) else limits)


# packing and plain extraction


def test_pack_is_reproducible_and_skips_junk(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text("def handle(r):\n    return 'hi'\n")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"junk")
    (src / ".venv").mkdir()
    (src / ".venv" / "big").write_bytes(b"0" * 1000)
    first = pack(src)
    os.utime(src / "main.py", (1, 1))
    assert pack(src) == first
    out = unpack_bytes(first, tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["main.py"]


def test_extracts_files_and_inner_symlinks(tmp_path):
    data = make_tar(file("pkg/a.py", b"A = 1\n"), link("pkg/b.py", "a.py"))
    out = unpack_bytes(data, tmp_path)
    assert (out / "pkg" / "b.py").read_text() == "A = 1\n"


def test_scan_counts_members_and_bytes():
    data = make_tar(folder("pkg"), file("pkg/a.py", b"A = 1\n"), file("./b.py", b"B"))
    result = scan(data)
    assert (result.members, result.unpacked) == (3, 7)


def test_names_past_100_bytes_and_multi_member_gzip_are_read(tmp_path):
    long = "d" * 120 + "/" + "f" * 200 + ".py"  # stored in a pax header
    raw = gzip.decompress(make_tar(file(long, b"ok")))
    data = gzip.compress(raw[:1024]) + gzip.compress(raw[1024:])
    out = unpack_bytes(data, tmp_path)
    assert (out / long).read_bytes() == b"ok"


# refused before extraction: unsafe members


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (file("/etc/passwd"), "absolute path"),
        (file("../evil.py"), "contains '..'"),
        (file("a/../../evil.py"), "contains '..'"),
        (link("escape", "../../etc"), "outside the bundle"),
        (link("abs", "/etc/passwd"), "absolute path"),
        (link("hard", "../x", tarfile.LNKTYPE), "outside the bundle"),
        (file("n" * 300 + ".py"), "limited to 255 bytes"),
        (file("/".join(["d" * 100] * 11)), "path of 1110 bytes"),
        (file("é" * 130), "limited to 255 bytes"),  # 260 bytes in UTF-8
    ],
)
def test_rejects_unsafe_members(tmp_path, member, reason):
    with pytest.raises(BundleError, match=reason):
        unpack_bytes(make_tar(member), tmp_path)
    assert list((tmp_path / "out").iterdir()) == []


def test_rejects_devices(tmp_path):
    info = tarfile.TarInfo("dev")
    info.type = tarfile.CHRTYPE
    with pytest.raises(BundleError, match="not a file"):
        unpack_bytes(make_tar((info, None)), tmp_path)


@pytest.mark.parametrize(
    "members",
    [
        [file("a"), file("a/b")],
        [file("a/b"), file("a")],
        [file("a"), file("a/b/c")],
        [link("a", "x"), file("a/b")],
        [folder("a"), file("a")],
    ],
    ids=[
        "file-then-child",
        "child-then-file",
        "grandchild",
        "symlink-as-folder",
        "folder-and-file",
    ],
)
def test_rejects_a_file_and_a_folder_of_one_name(tmp_path, members):
    with pytest.raises(BundleError, match=r"is a file, but|appears twice"):
        unpack_bytes(make_tar(*members), tmp_path)
    assert list((tmp_path / "out").iterdir()) == []


def test_rejects_duplicate_names(tmp_path):
    with pytest.raises(BundleError, match=r"'main\.py' appears twice"):
        unpack_bytes(make_tar(file("main.py", b"1"), file("./main.py", b"2")), tmp_path)


def test_a_tree_with_folders_and_a_root_entry_is_fine():
    members = [folder("."), folder("pkg"), file("pkg/a.py"), folder("pkg/sub"), file("pkg/sub/b")]
    check_members([info for info, _ in members])


# refused by the scan: resource bombs


def test_rejects_a_pax_header_bomb_from_its_header_alone():
    # The header declares 1.2 GB; the scan refuses before reading any of it.
    data = gzip.compress(header("././@PaxHeader", tarfile.XHDTYPE, 1_200_000_000))
    with pytest.raises(BundleError, match="pax header of 1200000000 bytes; the limit is 65536"):
        scan(data)


def test_rejects_a_large_pax_header_with_its_data():
    info, data = file("main.py")
    info.pax_headers = {"comment": "x" * 100_000}
    with pytest.raises(BundleError, match="pax header of 1000"):
        scan(make_tar((info, data)))


def test_rejects_a_large_global_pax_header():
    data = gzip.compress(pax_block({"comment": "y" * 70_000}, tarfile.XGLTYPE) + bytes(1024))
    with pytest.raises(BundleError, match="pax header"):
        scan(data)


def test_rejects_a_long_gnu_name_header():
    data = make_tar(file("n" * 70_000), fmt=tarfile.GNU_FORMAT)
    with pytest.raises(BundleError, match="GNU long-name header of 70001 bytes"):
        scan(data)


def test_rejects_too_many_members():
    blocks = b"".join(header(f"f{n}") for n in range(10_001))
    with pytest.raises(BundleError, match="more than 10000 files and folders"):
        scan(gzip.compress(blocks + bytes(1024)))
    assert scan(gzip.compress(blocks[: 10_000 * 512] + bytes(1024))).members == 10_000


def test_rejects_declared_sizes_over_the_limit_without_reading_them():
    # b declares 600 bytes that are not there: refused at its header, not when data runs out
    data = gzip.compress(header("a", size=600) + bytes(1024) + header("b", size=600))
    with pytest.raises(BundleError, match="more than the limit of 1000 bytes"):
        scan(data, 1000)


def test_a_pax_size_record_is_the_size_that_counts():
    data = gzip.compress(pax_block({"size": "5000"}) + header("a", size=0) + bytes(5120))
    with pytest.raises(BundleError, match="more than the limit of 1000 bytes"):
        scan(data, 1000)


def test_rejects_a_global_pax_header_that_sets_sizes():
    data = gzip.compress(pax_block({"size": "10"}, tarfile.XGLTYPE) + header("a") + bytes(1024))
    with pytest.raises(BundleError, match="global pax header"):
        scan(data)


def test_rejects_a_gzip_bomb_of_zeros():
    data = gzip.compress(bytes(3 * 1024 * 1024))
    assert len(data) < 5000
    with pytest.raises(BundleError, match="decompresses to more than"):
        scan(data, Limits(1000, slack=1024 * 1024))


def test_rejects_negative_sizes():
    block = bytearray(header("a", size=0))
    block[124:136] = b"\xff" * 12  # GNU base-256: -1
    block[148:156] = b" " * 8
    block[148:155] = f"{sum(block):06o}\0".encode()
    with pytest.raises(BundleError, match="negative size"):
        scan(gzip.compress(bytes(block) + bytes(1024)))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"this is not a tarball", "not a readable tar.gz"),
        (gzip.compress(b"not a tar header" * 64), "not a readable tar.gz"),
        (gzip.compress(header("a")[:-1] + b"!"), "bad header checksum"),
        (make_tar(file("a", b"x" * 4000))[:-100], "truncated"),
        (gzip.decompress(make_tar(file("a"))), "not a readable tar.gz"),  # plain tar
    ],
    ids=["garbage", "gzip-of-garbage", "checksum", "truncated", "not-gzip"],
)
def test_rejects_unreadable_archives(tmp_path, data, reason):
    with pytest.raises(BundleError, match=reason):
        unpack_bytes(data, tmp_path)


def test_rejects_oversized(tmp_path):
    with pytest.raises(BundleError, match="more than the limit"):
        unpack_bytes(make_tar(file("big", b"0" * 5000)), tmp_path, 1000)


# the child process


async def test_unpacks_in_a_child_and_reports_its_refusal(tmp_path):
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(make_tar(file("main.py", b"print(1)\n")))
    (tmp_path / "ok").mkdir()
    await unpack(archive, tmp_path / "ok", Limits(10_000))
    assert (tmp_path / "ok" / "main.py").read_bytes() == b"print(1)\n"
    bomb = tmp_path / "bomb.tar.gz"
    bomb.write_bytes(gzip.compress(header("x", tarfile.XHDTYPE, 1_200_000_000)))
    (tmp_path / "bomb").mkdir()
    with pytest.raises(BundleError, match="pax header of 1200000000 bytes"):
        await unpack(bomb, tmp_path / "bomb", Limits(10_000))


def test_the_child_confines_itself_before_reading():
    script = (
        "import resource as r; from hearth.builder.unpack import Limits, confine; "
        "confine(Limits(12345)); "
        "print([r.getrlimit(x)[0] for x in "
        "(r.RLIMIT_AS, r.RLIMIT_CPU, r.RLIMIT_FSIZE, r.RLIMIT_NOFILE, r.RLIMIT_CORE)])"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str([1 << 30, 60, 12345, 64, 0])


async def test_a_child_past_its_wall_clock_is_killed():
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(BundleError, match=r"took longer than 0\.5s"):
        await run_child(argv, 0.5)


def test_exit_codes_become_messages():
    limits = Limits(1000)
    assert explain_exit(EXIT_REFUSED, "Traceback...\nthe reason\n", limits) == "the reason"
    assert "1024 MiB of memory" in explain_exit(EXIT_NO_MEMORY, "", limits)
    assert "60s of CPU time" in explain_exit(-24, "", limits)  # SIGXCPU
    assert "killed by signal SIGKILL" in explain_exit(-9, "", limits)
    assert explain_exit(1, "boom\nValueError: x\n", limits).endswith("(exit code 1): ValueError: x")


# the store: concurrent puts, refusals, collection


async def test_concurrent_puts_of_one_bundle_share_one_folder(tmp_path):
    store = BundleStore(tmp_path)
    data = make_tar(file("main.py", b"x = 1\n"))
    results = await asyncio.gather(*(store.put(data, 10_000) for _ in range(4)))
    assert len(set(results)) == 1
    sha, code = results[0]
    assert (code / "main.py").read_text() == "x = 1\n"
    assert sorted(p.name for p in store.code.iterdir()) == [sha]
    assert sorted(p.name for p in store.archives.iterdir()) == [f"{sha}.tar.gz"]


async def test_a_refused_put_leaves_nothing(tmp_path):
    store = BundleStore(tmp_path)
    with pytest.raises(BundleError, match="appears twice"):
        await store.put(make_tar(file("a"), file("a")), 10_000)
    assert list(store.code.iterdir()) == list(store.archives.iterdir()) == []


async def test_missing_code_is_unpacked_again(tmp_path):
    store = BundleStore(tmp_path)
    sha, code = await store.put(make_tar(file("main.py")), 10_000)
    (code / "main.py").unlink()
    code.rmdir()
    assert await store.path(sha, 10_000) == code
    assert (code / "main.py").exists()
    with pytest.raises(BundleError, match="deploy the function again"):
        await store.path("0" * 64, 10_000)


async def test_collect_removes_what_is_not_kept_and_leftovers(tmp_path):
    store = BundleStore(tmp_path)
    kept, _ = await store.put(make_tar(file("kept.py")), 10_000)
    gone, _ = await store.put(make_tar(file("gone.py", b"0" * 3000)), 10_000)
    (store.code / ".unpack-crashed").mkdir()
    (store.archives / ".upload-crashed").write_bytes(b"x")
    freed = await store.collect({kept})
    assert (freed.code, freed.archives, freed.leftovers) == ([gone], [gone], 2)
    assert freed.bytes >= 3000
    assert [p.name for p in store.code.iterdir()] == [kept]
    assert [p.name for p in store.archives.iterdir()] == [f"{kept}.tar.gz"]


async def test_collect_spares_a_put_in_progress(tmp_path):
    store = BundleStore(tmp_path)
    data = make_tar(file("main.py"))
    put = asyncio.ensure_future(store.put(data, 10_000))
    while not any(p.name.startswith(".unpack-") for p in store.code.iterdir()):
        await asyncio.sleep(0.01)
    freed = await store.collect({"the-sha-being-put-is-pinned-by-the-caller"})
    assert freed.leftovers == 0
    _, code = await put
    assert (code / "main.py").exists()


async def test_env_collect_removes_unused_environments(tmp_path):
    envs = EnvBuilder(tmp_path / "envs")
    for key in ("py311-used", "py311-unused", "base", ".py311-new.building"):
        (envs.root / key / "bin").mkdir(parents=True)
        (envs.root / key / "bin" / "python").write_bytes(b"0" * 100)
    removed, freed = await envs.collect({"py311-used"})
    assert removed == ["py311-unused"]
    assert freed >= 100
    names = sorted(p.name for p in envs.root.iterdir())
    assert names == [".py311-new.building", "base", "py311-used"]


async def test_collection_spares_what_a_deploy_has_pinned(tmp_path):
    store = Store(tmp_path / "hearth.db")
    bundles = BundleStore(tmp_path)
    envs = EnvBuilder(tmp_path / "envs")
    functions = Rollouts(DaemonConfig(tmp_path), store, bundles, envs, None, None, None)  # type: ignore[arg-type]
    shas = {}
    for label in ("used", "pinned", "unused"):
        shas[label], _ = await bundles.put(make_tar(file(f"{label}.py")), 10_000)
        (envs.root / f"py311-{label}").mkdir()
    store.set_traffic("fn", {store.new_version("fn", shas["used"], "py311-used", {}): 100})
    with functions._pin(shas["pinned"]), functions._pin("py311-pinned"):
        await functions.collect_garbage()
    assert sorted(p.name for p in bundles.code.iterdir()) == sorted([shas["used"], shas["pinned"]])
    assert sorted(p.name for p in envs.root.iterdir()) == ["py311-pinned", "py311-used"]
    await functions.collect_garbage()  # the deploy failed before its version row existed
    assert [p.name for p in bundles.code.iterdir()] == [shas["used"]]
    assert [p.name for p in envs.root.iterdir()] == ["py311-used"]
    store.close()


# reading small text files from unpacked code


def test_read_small_text(tmp_path):
    assert read_small_text(tmp_path / "missing.toml") is None
    (tmp_path / "ok.txt").write_text("flask==3.0\n")
    assert read_small_text(tmp_path / "ok.txt") == "flask==3.0\n"
    (tmp_path / "big.toml").write_text("#" * 70_000)
    with pytest.raises(BundleError, match=r"big\.toml is larger than 64 KiB"):
        read_small_text(tmp_path / "big.toml")
    (tmp_path / "latin1.txt").write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(BundleError, match=r"latin1.txt is not UTF-8 text \(byte 0xe9 on line 2\)"):
        read_small_text(tmp_path / "latin1.txt")
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(BundleError, match=r"cannot read dir\.toml"):
        read_small_text(tmp_path / "dir.toml")
