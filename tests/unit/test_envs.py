import sys
import time
from pathlib import Path

import pytest

from hearth.builder import envs
from hearth.builder.envs import (
    BuildError,
    EnvBuilder,
    check_requirements,
    env_key,
    requirement_lines,
)

GOOD = """\
# web
flask>=3.0
psycopg[binary]>=3.1,<4  # extras and a range
requests[security] >= 2.8.1, == 2.8.* ; python_version < "3.12"
tomli; python_version<'3.11'
Django ~= 5.0

zope.interface===6.0
"""


def test_requirements_by_name_are_accepted_and_normalised():
    check_requirements(GOOD)
    assert requirement_lines(GOOD) == [
        "flask>=3.0",
        "psycopg[binary]<4,>=3.1",
        'requests[security]==2.8.*,>=2.8.1; python_version < "3.12"',
        'tomli; python_version < "3.11"',
        "Django~=5.0",
        "zope.interface===6.0",
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "  # indented\r\n\r\n"])
def test_comments_and_blank_lines_alone_are_fine(text):
    assert requirement_lines(text) == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("-i https://evil.example/simple", "option -i is not allowed"),
        ("--index-url https://evil.example/simple", "option --index-url is not allowed"),
        ("--index-url=https://evil.example/simple", "option --index-url is not allowed"),
        ("--extra-index-url https://evil.example/simple", "option --extra-index-url"),
        ("-f https://evil.example/wheels", "option -f is not allowed"),
        ("--find-links ./wheels", "option --find-links"),
        ("-r /etc/passwd", "option -r is not allowed"),
        ("--requirement other.txt", "option --requirement"),
        ("-c constraints.txt", "option -c is not allowed"),
        ("-e .", "option -e is not allowed"),
        ("--editable git+https://example.com/x.git", "option --editable"),
        ("--trusted-host evil.example", "option --trusted-host"),
        ("--no-binary :all:", "option --no-binary"),
        ("--pre", "option --pre"),
        ("  -i https://evil.example/simple", "option -i"),
        ("flask==3.0 --hash=sha256:abcdef", "options (such as --hash) are not allowed"),
        ("flask @ https://example.com/flask-3.0-py3-none-any.whl", "direct references"),
        ("flask@https://example.com/flask.whl", "direct references"),
        ("secrets @ file:///etc/passwd", "direct references"),
        ("flask @ git+https://github.com/pallets/flask", "direct references"),
        ("git+https://github.com/pallets/flask", "URLs and local paths"),
        ("https://example.com/flask-3.0-py3-none-any.whl", "URLs and local paths"),
        ("file:///etc/passwd", "URLs and local paths"),
        ("./vendored", "URLs and local paths"),
        ("../elsewhere", "URLs and local paths"),
        (".", "URLs and local paths"),
        ("/abs/path", "URLs and local paths"),
        ("~/pkg", "URLs and local paths"),
        ("vendor/pkg", "URLs and local paths"),
        ("C:\\pkg", "URLs and local paths"),
        ("flask-3.0-py3-none-any.whl", "read as a local path"),
        ("flask-3.0.tar.gz", "read as a local path"),
        ("pkg.zip", "read as a local path"),
        ("flask==${FLASK_VERSION}", "environment variable references"),
        ("flask \\", "continued lines are not allowed"),
        ("flask >=", "not a requirement"),
        ("???", "not a requirement"),
    ],
)
def test_refused_lines_name_the_line_and_the_reason(line, reason):
    text = f"flask>=3.0\n# a comment\n{line}\nrequests\n"
    with pytest.raises(BuildError) as info:
        check_requirements(text)
    message = str(info.value)
    assert message.startswith(f"requirements.txt line 3: {line.strip()!r}: ")
    assert reason in message
    assert 'e.g. "flask>=3.0"' in message


def test_a_line_ending_the_installer_knows_cannot_hide_an_option():
    for ending in ("\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028"):
        with pytest.raises(BuildError, match=r"line 2: .*option --index-url"):
            check_requirements(f"flask{ending}--index-url https://evil.example/simple")


def test_size_and_count_are_capped():
    check_requirements("\n".join(f"pkg{i}" for i in range(1000)))
    with pytest.raises(BuildError, match="more than 1000 requirements"):
        check_requirements("\n".join(f"pkg{i}" for i in range(1001)))
    with pytest.raises(BuildError, match="at most 1MiB"):
        check_requirements("# " + "x" * 1024**2)


def test_stale_staging_folders_are_removed_at_start(tmp_path):
    stale = tmp_path / ".py311-0123456789abcdef.building"
    (stale / "lib").mkdir(parents=True)
    (stale / "lib" / "half-installed.py").write_text("")
    stale_file = tmp_path / ".py311-fedcba9876543210.building"
    stale_file.write_text("")
    kept = [tmp_path / "py311-0123456789abcdef", tmp_path / ".other", tmp_path / "x.building"]
    for path in kept:
        path.mkdir()
    EnvBuilder(tmp_path)
    assert not stale.exists()
    assert not stale_file.exists()
    assert all(path.exists() for path in kept)


def fake_cached_env(root: Path, requirements: str) -> str:
    key = env_key(requirements)
    (root / key / "bin").mkdir(parents=True)
    (root / key / "bin" / "python").write_text("")
    return key


def no_installer():
    raise AssertionError("the installer must not run")


async def test_a_refused_file_is_refused_even_when_its_env_is_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(envs, "_uv", no_installer)
    bad = "--index-url https://evil.example/simple\nflask\n"
    fake_cached_env(tmp_path, bad)
    builder = EnvBuilder(tmp_path)
    with pytest.raises(BuildError, match=r"line 1: .*option --index-url"):
        await builder.ensure(bad, lambda line: None)
    good = "flask\n"
    key = fake_cached_env(tmp_path, good)
    assert (await builder.ensure(good, lambda line: None)).key == key
    assert (await builder.ensure("# nothing\n", lambda line: None)).key == "base"


def write_script(path: Path, body: str) -> str:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return str(path)


FAKE_UV = """\
import os, pathlib, sys
log = pathlib.Path(os.environ["FAKE_UV_LOG"])
with log.open("a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "venv":
    venv = pathlib.Path(sys.argv[-1])
    (venv / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "bin" / "python").symlink_to(sys.executable)
else:
    req = pathlib.Path(sys.argv[sys.argv.index("-r") + 1])
    (log.parent / "seen-requirements.txt").write_text(req.read_text())
    print("x" * 200_000)  # one over-long line, no newline handling trouble
    print("Installed 1 package")
    sys.exit(int(os.environ.get("FAKE_UV_EXIT", "0")))
"""


@pytest.mark.parametrize("index_url", [None, "https://pypi.example/simple"])
async def test_the_operator_index_is_passed_to_the_installer(tmp_path, monkeypatch, index_url):
    log = tmp_path / "uv.log"
    monkeypatch.setenv("FAKE_UV_LOG", str(log))
    uv = write_script(tmp_path / "uv", FAKE_UV)
    monkeypatch.setattr(envs, "_uv", lambda: uv)
    builder = EnvBuilder(tmp_path / "envs", index_url=index_url)
    lines: list[str] = []
    env = await builder.ensure("flask >= 3.0  # web\n", lines.append)
    assert env.key == env_key("flask >= 3.0  # web\n")
    install = log.read_text().splitlines()[1]
    assert install.startswith("pip install")
    if index_url:
        assert f"--index-url {index_url} -r" in install
    else:
        assert "--index-url" not in install
    assert (tmp_path / "seen-requirements.txt").read_text() == "flask>=3.0\n"
    assert "Installed 1 package" in lines
    assert not list((tmp_path / "envs").glob(".*.building"))


async def test_a_failed_install_reports_the_installer_output(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_UV_LOG", str(tmp_path / "uv.log"))
    monkeypatch.setenv("FAKE_UV_EXIT", "1")
    uv = write_script(tmp_path / "uv", FAKE_UV)
    monkeypatch.setattr(envs, "_uv", lambda: uv)
    builder = EnvBuilder(tmp_path / "envs")
    with pytest.raises(
        BuildError, match=r"installing requirements\.txt failed:\n(.|\n)*Installed 1 package"
    ):
        await builder.ensure("flask\n", lambda line: None)
    assert list((tmp_path / "envs").iterdir()) == []


def gone(pid: int) -> bool:
    """True once the process has exited (a zombie whose parent is not ours counts)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


async def test_a_slow_build_is_stopped_with_its_helpers(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    slow = tmp_path / "slow-uv"
    slow.write_text(f"#!/bin/sh\nsleep 300 &\necho $$ $! > {pids}\nwait\n")
    slow.chmod(0o755)
    monkeypatch.setattr(envs, "_uv", lambda: str(slow))
    builder = EnvBuilder(tmp_path / "envs", build_timeout=0.5)
    with pytest.raises(BuildError, match=r"took longer than 0\.5s and was stopped"):
        await builder.ensure("flask\n", lambda line: None)
    assert list((tmp_path / "envs").iterdir()) == []
    installer, helper = (int(pid) for pid in pids.read_text().split())
    assert gone(installer)
    # The helper is killed with the group; its new parent reaps it when it gets to it.
    deadline = time.monotonic() + 10
    while not gone(helper) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gone(helper)
