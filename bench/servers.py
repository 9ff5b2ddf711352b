"""The systems under test, each a real server on a free 127.0.0.1 port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()  # not left behind: the caller never got a server to stop
    proc.wait()
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class Server:
    url = ""
    proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Uvicorn(Server):
    """The ceiling: the same app under plain uvicorn, one worker, uvloop + httptools."""

    def __init__(self, app_dir: Path, app: str, env: dict[str, str], factory: bool = False):
        port = free_port()
        argv = [
            str(BIN / "uvicorn"),
            app,
            "--app-dir",
            str(app_dir),
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        if factory:
            argv.append("--factory")
        self.proc = subprocess.Popen(
            argv, cwd=app_dir, env={**os.environ, **env}, stdout=subprocess.DEVNULL
        )
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        wait_http(self.url, self.proc)


class Nginx(Server):
    """nginx with upstream keep-alive in front of a uvicorn server: the native-proxy reference."""

    def __init__(self, upstream_port: int, workdir: Path):
        port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "nginx.conf"
        conf.write_text(
            textwrap.dedent(f"""
            worker_processes 1;
            daemon off;
            pid {workdir}/nginx.pid;
            error_log {workdir}/error.log warn;
            events {{ worker_connections 1024; }}
            http {{
                access_log off;
                client_body_temp_path {workdir}/body;
                proxy_temp_path {workdir}/proxy;
                fastcgi_temp_path {workdir}/fastcgi;
                uwsgi_temp_path {workdir}/uwsgi;
                scgi_temp_path {workdir}/scgi;
                upstream app {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
                server {{
                    listen 127.0.0.1:{port};
                    location / {{
                        proxy_pass http://app;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                    }}
                }}
            }}
        """)
        )
        self.proc = subprocess.Popen(
            [self.binary(), "-c", str(conf), "-p", str(workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}/"
        wait_http(self.url, self.proc)

    @staticmethod
    def binary() -> str:
        return shutil.which("nginx") or "/usr/sbin/nginx"

    @classmethod
    def available(cls) -> bool:
        return Path(cls.binary()).exists()


class Cgi(Server):
    """A fresh process per request (the standard library's CGI server): request-bound context."""

    def __init__(self, workdir: Path, scripts: dict[str, str]):
        port = free_port()
        cgi_bin = workdir / "cgi-bin"
        cgi_bin.mkdir(parents=True, exist_ok=True)
        for name, source in scripts.items():
            path = cgi_bin / name
            path.write_text(textwrap.dedent(source).lstrip())
            path.chmod(0o755)
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).parent / "cgi_server.py"), str(port)],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{port}/cgi-bin/"
        self.url = self.base + next(iter(scripts))
        wait_http(self.url, self.proc)


class Hearth(Server):
    """The real daemon, as a user runs it."""

    def __init__(self, data_dir: Path, *options: str):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.log = (data_dir.parent / "hearthd.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hearth.cli.main",
                "up",
                "--data-dir",
                str(data_dir),
                "--port",
                "0",
                "--api-port",
                "0",
                *options,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not (data_dir / "ready").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("hearth did not start; see hearthd.log")
            time.sleep(0.05)
        state = json.loads((data_dir / "daemon.json").read_text())
        self.url = state["gateway"]
        self.api = httpx.Client(
            base_url=state["api"],
            headers={"authorization": "Bearer " + (data_dir / "token").read_text().strip()},
            timeout=600,
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hearth.cli.main", *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            check=True,
        )

    def deploy(self, folder: Path, name: str | None = None) -> dict:
        from hearth.builder.bundle import pack
        from hearth.spec import folder_name

        name = name or folder_name(folder)
        response = self.api.post(f"/v1/functions/{name}/versions", content=pack(folder))
        response.raise_for_status()
        last = json.loads(response.text.strip().splitlines()[-1])
        if "error" in last:
            raise RuntimeError(f"deploy of {name} failed: {last['error']}")
        return dict(last["result"])

    def status(self, name: str) -> dict:
        return dict(self.api.get(f"/v1/functions/{name}").json())

    def info(self) -> dict:
        return dict(self.api.get("/v1/info").json())

    def stop(self) -> None:
        self.api.close()
        super().stop()
        self.log.close()
