"""The sandbox applied to a real child process, which then tries what a hostile function
would. Each case runs in a fresh interpreter (layers are permanent for a process)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hearth.sandbox import landlock, seccomp
from hearth.sandbox.plan import runtime_paths
from hearth.sandbox.policy import DEVICES, SYSTEM_READ, Policy

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="identity and mount layers need root")
needs_landlock = pytest.mark.skipif(landlock.abi_version() < 1, reason="no Landlock here")
needs_seccomp = pytest.mark.skipif(not seccomp.available(), reason="no libseccomp here")
UID = 64123  # an unused uid for the tests


def run_sandboxed(policy: Policy, body: str) -> dict:
    """Apply `policy` in a new interpreter, run `body` (which fills `out`), return `out`."""
    script = (
        textwrap.dedent(
            """
        import json, os, sys
        from hearth.sandbox import apply, Policy
        apply(Policy.from_dict(json.loads(sys.argv[1])))
        out = {}
        def attempt(name, fn):
            try:
                out[name] = fn()
            except OSError as exc:
                out[name] = type(exc).__name__
        """
        )
        + textwrap.dedent(body)
        + "\nprint(json.dumps(out))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(policy.to_dict())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def base_read() -> tuple[str, ...]:
    return (*SYSTEM_READ, *runtime_paths(Path("/nonexistent")))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "code.py").write_text("mine")
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "code.py").write_text("theirs")
    (tmp_path / "token").write_text("secret")
    (tmp_path / "data").mkdir()
    return tmp_path


@needs_landlock
def test_landlock_allows_only_the_paths_given(tree):
    policy = Policy(
        landlock=landlock.abi_version(),
        read=(*base_read(), str(tree / "mine")),
        write=(str(tree / "data"), *DEVICES),
    )
    out = run_sandboxed(
        policy,
        f"""
        attempt("mine", lambda: open({str(tree / "mine" / "code.py")!r}).read())
        attempt("theirs", lambda: open({str(tree / "theirs" / "code.py")!r}).read())
        attempt("token", lambda: open({str(tree / "token")!r}).read())
        attempt("write_mine", lambda: open({str(tree / "mine" / "x")!r}, "w").write("x"))
        attempt("write_data", lambda: open({str(tree / "data" / "x")!r}, "w").write("x"))
        attempt("import_json", lambda: __import__("decimal").__name__)
        """,
    )
    assert out["mine"] == "mine"
    assert out["theirs"] == "PermissionError"
    assert out["token"] == "PermissionError"
    assert out["write_mine"] == "PermissionError"
    assert out["write_data"] == 1
    assert out["import_json"] == "decimal"


@needs_seccomp
def test_seccomp_denies_cross_process_and_namespace_calls():
    out = run_sandboxed(
        Policy(seccomp=True),
        """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        out["ptrace"] = [libc.ptrace(16, os.getppid(), 0, 0), ctypes.get_errno()]
        out["unshare"] = [libc.unshare(0x40000000), ctypes.get_errno()]
        out["bpf"] = [libc.syscall(321, 0, 0, 0), ctypes.get_errno()]
        out["getpid"] = os.getpid() > 0
        """,
    )
    import errno

    assert out["ptrace"] == [-1, errno.EPERM]
    assert out["unshare"] == [-1, errno.EPERM]
    assert out["bpf"] == [-1, errno.EPERM]
    assert out["getpid"] is True


@needs_root
def test_identity_drops_root_for_good(tree):
    (tree / "token").chmod(0o600)
    out = run_sandboxed(
        Policy(uid=UID, gid=UID),
        f"""
        out["ids"] = [os.getuid(), os.geteuid(), os.getgid(), os.getgroups()]
        attempt("token", lambda: open({str(tree / "token")!r}).read())
        attempt("signal_parent", lambda: os.kill(os.getppid(), 0))
        attempt("setuid", lambda: os.setuid(0))
        out["caps"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")]
        """,
    )
    assert out["ids"] == [UID, UID, UID, []]
    assert out["token"] == "PermissionError"
    assert out["signal_parent"] == "PermissionError"
    assert out["setuid"] == "PermissionError"
    assert out["caps"] == ["0000000000000000"]


@needs_root
def test_private_view_reveals_only_what_is_given(tree):
    tree.chmod(0o700)  # like a data directory: nobody else may enter
    (tree / "mine").chmod(0o755)
    os.chown(tree / "data", UID, UID)
    policy = Policy(
        uid=UID,
        gid=UID,
        mounts=True,
        read=(*base_read(), str(tree / "mine")),
        write=(str(tree / "data"),),
    )
    out = run_sandboxed(
        policy,
        f"""
        attempt("mine", lambda: open({str(tree / "mine" / "code.py")!r}).read())
        attempt("theirs", lambda: os.path.exists({str(tree / "theirs")!r}))
        attempt("token", lambda: os.path.exists({str(tree / "token")!r}))
        attempt("write_data", lambda: open({str(tree / "data" / "x")!r}, "w").write("x"))
        attempt("tmp", lambda: sorted(os.listdir("/tmp")))
        attempt("import", lambda: __import__("decimal").__name__)  # Python lives under /root
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        out["foreign_pids"] = [p for p in pids if os.stat("/proc/" + p).st_uid != os.getuid()]
        """,
    )
    assert out["mine"] == "mine"
    assert out["theirs"] is False
    assert out["token"] is False
    assert out["write_data"] == 1
    assert out["foreign_pids"] == []
    assert out["import"] == "decimal"
    assert ".." not in str(out["tmp"])


@needs_root
def test_no_network_means_no_network():
    out = run_sandboxed(
        Policy(network=False),
        """
        import socket
        def connect():
            socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
            return "connected"
        attempt("connect", connect)
        """,
    )
    assert out["connect"] in ("ConnectionRefusedError", "OSError")


def test_a_step_that_fails_stops_everything():
    script = (
        "from hearth.sandbox import apply, Policy, SandboxError\n"
        "try:\n"
        "    apply(Policy(rlimits=((-1, 1),), seccomp=True))\n"
        "except SandboxError as exc:\n"
        "    print('refused:', exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "refused:" in result.stdout, result.stderr


def test_policy_round_trips():
    policy = Policy(uid=1, gid=2, read=("/a",), write=("/b",), rlimits=((7, 64),), env={"A": "1"})
    assert Policy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    assert socket  # keep the import (used by the network case's documentation)
