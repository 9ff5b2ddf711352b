"""Deploys that must be refused cleanly, through the real daemon.

Every refusal ends the deploy stream with an error line naming the problem, and the version
that served before keeps serving. Requests carry timeouts, so a regression fails instead of
hanging the client.
"""

import io
import json
import os
import struct
import tarfile
import threading
import zlib

import httpx
import pytest

from tests.e2e.conftest import Daemon

DEPLOY_TIMEOUT = 60
GOOD = b"def handle(request):\n    return 'safe'\n"


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A bundle built in memory: names a file system would refuse can be tested too."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def pax_header_bomb(size: int = 1_200_000_000) -> bytes:
    """About 1.2 MB of gzip holding one pax extended header of `size` bytes.

    Built from one deflate block repeated: after a full flush, the same input compresses
    to the same bytes, so the stream is valid (CRC included) without compressing 1.2 GB.
    """
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = size
    head = info.tobuf(format=tarfile.USTAR_FORMAT)
    chunk = bytes(1 << 20)
    count, rest = divmod(size, len(chunk))
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    body = first + block * count + deflate.compress(chunk[:rest]) + deflate.flush()
    crc = zlib.crc32(head)
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(chunk[:rest], crc)
    trailer = struct.pack("<II", crc, (len(head) + size) & 0xFFFFFFFF)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + body + trailer


def deploy(daemon: Daemon, name: str, data: bytes) -> dict:
    """POST a bundle; the last line of the answer ({"result": ...} or {"error": ...})."""
    with daemon.api_client() as api:
        response = api.post(f"/v1/functions/{name}/versions", content=data, timeout=DEPLOY_TIMEOUT)
    if response.status_code != 200:
        return response.json()
    return json.loads(response.text.strip().splitlines()[-1])


def refused(daemon: Daemon, data: bytes, name: str = "guarded") -> str:
    """Deploy over the serving `guarded` function; return the error; check v1 still serves."""
    answer = deploy(daemon, name, data)
    assert "error" in answer, answer
    assert daemon.get(f"/fn/{name}/").text == "safe"
    return str(answer["error"])


@pytest.fixture(scope="module", autouse=True)
def guarded(daemon):
    answer = deploy(daemon, "guarded", tar_gz({"main.py": GOOD}))
    assert "result" in answer, answer


def peak_rss(daemon: Daemon) -> int:
    assert daemon.proc is not None
    with open(f"/proc/{daemon.proc.pid}/status") as fh:
        line = next(ln for ln in fh if ln.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def test_a_pax_header_bomb_is_refused_while_functions_keep_answering(daemon):
    bomb = pax_header_bomb()
    assert len(bomb) < 1_300_000
    peak_before = peak_rss(daemon)
    answers: list[dict] = []
    upload = threading.Thread(target=lambda: answers.append(deploy(daemon, "bomb", bomb)))
    upload.start()
    served = []
    while upload.is_alive():  # the gateway answers throughout (its loop is never held)
        served.append(daemon.get("/fn/guarded/").text)
    upload.join()
    assert set(served) <= {"safe"}
    assert "pax header of 1200000000 bytes" in answers[0]["error"]
    # Nothing of the 1.2 GB was ever held by the daemon.
    assert peak_rss(daemon) - peak_before < 100 * 2**20
    assert daemon.get("/fn/bomb/").status_code == 404


def test_two_deploys_of_one_new_bundle_at_once_both_succeed(daemon):
    # Enough files that unpacking takes a while, so the two deploys overlap in it.
    files = {f"static/{n}.txt": os.urandom(4096) for n in range(400)}
    data = tar_gz({"main.py": b"def handle(request):\n    return 'twin'\n", **files})
    names = ["twin", "twin", "twin-b"]
    start = threading.Barrier(len(names))
    answers: dict[int, dict] = {}

    def run(n: int) -> None:
        start.wait()
        try:
            answers[n] = deploy(daemon, names[n], data)
        except httpx.TimeoutException:
            answers[n] = {"hung": f"no answer within {DEPLOY_TIMEOUT}s"}

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(names))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEPLOY_TIMEOUT + 5)
    assert all("result" in answers[n] for n in range(len(names))), answers
    assert sorted(answers[n]["result"]["version"] for n in (0, 1)) == [1, 2]
    assert daemon.get("/fn/twin/").text == "twin"
    assert daemon.get("/fn/twin-b/").text == "twin"
    leftovers = [p.name for p in (daemon.data_dir / "code").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_a_file_name_over_255_bytes_is_refused(daemon):
    error = refused(daemon, tar_gz({"main.py": GOOD, "n" * 300 + ".py": b"x = 1\n"}))
    assert "limited to 255 bytes" in error


def test_text_that_is_not_utf8_is_refused(daemon):
    requirements = tar_gz({"main.py": GOOD, "requirements.txt": b"caf\xe9-package==1.0\n"})
    assert "requirements.txt is not UTF-8 text" in refused(daemon, requirements)
    settings = tar_gz({"main.py": GOOD, "hearth.toml": b'[env]\nCITY = "M\xfcnchen"\n'})
    assert "hearth.toml is not UTF-8 text (byte 0xfc on line 2)" in refused(daemon, settings)


def test_an_oversized_hearth_toml_is_refused(daemon):
    settings = b"# padding\n" * 10_000  # 100 KB
    error = refused(daemon, tar_gz({"main.py": GOOD, "hearth.toml": settings}))
    assert "hearth.toml is larger than 64 KiB" in error


def test_unsafe_trees_are_refused(daemon):
    file_and_folder = tar_gz({"main.py": GOOD, "lib": b"", "lib/x.py": b""})
    assert "is a file, but 'lib/x.py' puts it in a folder" in refused(daemon, file_and_folder)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for body in (GOOD, b"def handle(request):\n    return 'evil'\n"):
            info = tarfile.TarInfo("main.py")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    assert "'main.py' appears twice" in refused(daemon, raw.getvalue())


@pytest.mark.parametrize(
    ("exit_line", "expected"),
    [
        ("os._exit(1)", "exit code 1"),
        ("os.kill(os.getpid(), signal.SIGKILL)", "killed by signal SIGKILL"),
    ],
)
def test_an_exit_in_setup_is_reported_as_an_exit(daemon, exit_line, expected):
    main = (
        "import os, signal\n\n"
        "def setup():\n"
        "    print('connecting to the database', flush=True)\n"
        f"    {exit_line}\n\n"
        "def handle(request):\n"
        "    return 'never'\n"
    )
    error = refused(daemon, tar_gz({"main.py": main.encode()}))
    assert f"the instance exited during startup ({expected})" in error
    assert "did not finish" not in error
    assert "failed to start; v1 keeps serving" in error
    assert "its last output:\nconnecting to the database" in error


def test_remove_frees_the_code_on_disk(daemon):
    data = tar_gz({"main.py": b"def handle(request):\n    return 'brief'\n"})
    answer = deploy(daemon, "brief", data)
    assert "result" in answer, answer
    with daemon.api_client() as api:
        sha = api.get("/v1/functions/brief/versions").json()[-1]["bundle"]
        code = daemon.data_dir / "code" / sha
        archive = daemon.data_dir / "bundles" / f"{sha}.tar.gz"
        assert code.is_dir() and archive.is_file()
        assert api.delete("/v1/functions/brief").status_code == 200
    assert not code.exists() and not archive.exists()
    assert daemon.get("/fn/guarded/").text == "safe"
    guarded_sha = daemon.status("guarded")["versions"][0]["bundle"]
    assert (daemon.data_dir / "code" / guarded_sha).is_dir()


def test_leftovers_are_collected_at_start(fresh_daemon):
    code = fresh_daemon.data_dir / "code"
    (code / ".unpack-interrupted").mkdir(parents=True)
    (code / ".unpack-interrupted" / "main.py").write_text("x = 1\n")
    orphan = code / ("ab" * 32)  # code no version refers to
    orphan.mkdir()
    (orphan / "main.py").write_text("x = 2\n")
    fresh_daemon.start()
    assert list(code.iterdir()) == []
    assert "freed" in fresh_daemon.log()
    assert httpx.get(fresh_daemon.api + "/v1/health").json()["ok"] is True
