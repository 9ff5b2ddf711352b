"""A real Prometheus scrapes the daemon with the configuration documented in docs/: the
format, the names and the token are what Prometheus itself accepts."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "docs" / "monitoring" / "prometheus.yml"

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="prometheus not installed (apt-get install -y prometheus; .ci/run does)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_prometheus_scrapes_with_the_documented_config(daemon, fn_dir, tmp_path):
    daemon.deploy(fn_dir("scraped", {"main.py": "def handle(request):\n    return 'ok'\n"}))
    for _ in range(7):
        assert daemon.get("/fn/scraped/").status_code == 200
    with daemon.api_client() as api:
        made = api.post("/v1/tokens", json={"name": "prometheus", "scope": "read"})
        token = made.json()["token"]
    (tmp_path / "hearth-token").write_text(token + "\n")
    api_address = daemon.api.removeprefix("http://")
    config = (
        CONFIG.read_text()
        .replace("/etc/prometheus/hearth-token", str(tmp_path / "hearth-token"))
        .replace("127.0.0.1:8081", api_address)
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
    )
    (tmp_path / "prometheus.yml").write_text(config)
    port = free_port()
    with (tmp_path / "prometheus.log").open("wb") as log:
        prometheus = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        base = f"http://127.0.0.1:{port}/api/v1"

        def target():
            try:
                active = httpx.get(f"{base}/targets", timeout=5).json()["data"]["activeTargets"]
            except (httpx.HTTPError, ValueError, KeyError):
                return None
            return active[0] if active and active[0]["health"] == "up" else None

        up = wait_for(target, timeout=60, interval=0.5, what="the hearth target up")
        assert up["scrapeUrl"] == f"{daemon.api}/metrics"

        def served():
            query = 'hearth_requests_total{function="scraped",code="2xx"}'
            result = httpx.get(f"{base}/query", params={"query": query}, timeout=5).json()
            rows = result["data"]["result"]
            return rows if rows and float(rows[0]["value"][1]) == 7 else None

        [row] = wait_for(served, timeout=60, interval=0.5, what="the requests in Prometheus")
        assert row["metric"]["version"] == "1" and row["metric"]["job"] == "hearth"
    finally:
        prometheus.terminate()
        try:
            prometheus.wait(timeout=30)
        except subprocess.TimeoutExpired:
            prometheus.kill()
            prometheus.wait()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_the_exposition_passes_promtools_lint(daemon, fn_dir):
    daemon.deploy(fn_dir("linted", {"main.py": "def handle(request):\n    return 'ok'\n"}))
    daemon.get("/fn/linted/")
    with daemon.api_client() as api:
        text = api.get("/metrics").text
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
