"""End-to-end fixtures: the real daemon as a subprocess, on free ports, in a temporary folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


class Daemon:
    def __init__(self, data_dir: Path, *args: str) -> None:
        self.data_dir = data_dir
        self.args = args  # extra `hearth up` options
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-daemon.log"

    def start(self, timeout: float = 60.0) -> Daemon:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "ready").unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = self._spawn(log)
        deadline = time.monotonic() + timeout
        ready = self.data_dir / "ready"
        while not (ready.exists() and ready.read_text() == str(self.proc.pid)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"daemon did not start:\n{self.log()}")
            time.sleep(0.05)
        state = json.loads((self.data_dir / "daemon.json").read_text())
        self.gateway = state["gateway"]
        self.api = state["api"]
        self.port = state["port"]
        self.token = (self.data_dir / "token").read_text().strip()
        return self

    def _spawn(self, log) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hearth.cli.main",
                "up",
                "--data-dir",
                str(self.data_dir),
                "--port",
                "0",
                "--api-port",
                "0",
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(
        self, *args: str, check: bool = False, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "hearth.cli.main", *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "COLUMNS": "200"},
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"hearth {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def deploy(self, folder: Path, *extra: str) -> dict:
        result = self.cli("deploy", str(folder), "--json", *extra, check=True)
        return json.loads(result.stdout)

    def status(self, name: str) -> dict:
        return json.loads(self.cli("status", name, "--json", check=True).stdout)

    def events(self, name: str) -> list[dict]:
        return json.loads(self.cli("events", name, "--json", check=True).stdout)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.gateway + path, timeout=60, **kwargs)

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, self.gateway + path, timeout=60, **kwargs)

    def function_data(self, name: str) -> Path:
        """The function's own data folder (HEARTH_DATA), the one place outside its code that
        a sandboxed function may write, as the running daemon sees it: its disk is mounted
        in the daemon's own mount namespace, reached through /proc/PID/root."""
        assert self.proc is not None and self.proc.poll() is None, "the daemon is not running"
        folder = self.data_dir / "functions" / name / "data"
        folder.mkdir(parents=True, exist_ok=True)
        return Path(f"/proc/{self.proc.pid}/root{folder}")

    def read_data(self, name: str, path: str) -> str:
        """A file of the function's data while its disk is not mounted (after `rm`, or with
        the daemon stopped): the disk image is mounted read-only in a throwaway namespace."""
        folder = self.data_dir / "functions" / name
        if not (folder / "disk.img").exists():
            return (folder / "data" / path).read_text()
        script = 'm=$(mktemp -d) && mount -o loop,ro,noload "$1" "$m" && cat "$m/$2"'
        result = subprocess.run(
            ["unshare", "--mount", "sh", "-c", script, "-", str(folder / "disk.img"), path],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def api_client(self, token: str | None = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.api, headers=headers, timeout=120)


def write_function(base: Path, name: str, files: dict[str, str]) -> Path:
    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return folder


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("hearth") / "data").start()
    yield d
    code = d.stop()
    assert code == 0, f"daemon exited with {code}:\n{d.log()}"


@pytest.fixture
def fresh_daemon(tmp_path):
    d = Daemon(tmp_path / "data")
    yield d
    if d.proc is not None:
        d.stop()


@pytest.fixture
def fn_dir(tmp_path):
    def make(name: str, files: dict[str, str]) -> Path:
        return write_function(tmp_path / "functions", name, files)

    return make
