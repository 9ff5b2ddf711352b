"""docs/dashboard.png: a function's page on a live daemon, charts populated.

A daemon in a temporary folder (free ports) serves hello and visits from examples/; hello
gets a second version with a 80/20 split, then a minute and a half of traffic at a rate
that rises and falls, and its minimum goes to 3 instances halfway, so every chart has a
shape and the events say why. Headless Chromium (Debian's) logs in with the admin token
and takes the picture. Everything it started is stopped; only the PNG remains.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = [ROOT / "examples" / "hello", ROOT / "examples" / "visits"]
SHOWN = "hello"


def start(data: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """`hearth up` with the examples, as scripts/up runs it, on ports the OS picks."""
    log = (data.parent / "daemon.log").open("wb")
    args = ["--data-dir", str(data), "--port", "0", "--api-port", "0"]
    command = [sys.executable, "-m", "hearth.cli.main", "up", *args, *map(str, EXAMPLES)]
    daemon = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    ready = data / "ready"
    deadline = time.monotonic() + 120
    while not (ready.exists() and ready.read_text() == str(daemon.pid)):
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the daemon did not start; see {log.name}")
        time.sleep(0.1)
    return daemon, json.loads((data / "daemon.json").read_text())


def hearth(data: Path, *args: str) -> None:
    command = [sys.executable, "-m", "hearth.cli.main", *args, "--data-dir", str(data)]
    subprocess.run(command, check=True, capture_output=True)


def wait_deployed(api: httpx.Client) -> None:
    """`hearth up` deploys its folders after it is ready: wait until each serves."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        served = {f["name"] for f in api.get("/v1/functions").json() if f["version"]}
        if served >= {folder.name for folder in EXAMPLES}:
            return
        time.sleep(0.5)
    raise SystemExit("the examples were not deployed in time")


def traffic(gateway: str, api: httpx.Client, seconds: float) -> None:
    """One client, requests paced to 10..60 per second and back: light on the machine."""
    start = time.monotonic()
    scaled = False
    with httpx.Client(base_url=gateway, timeout=30) as client:
        while (elapsed := time.monotonic() - start) < seconds:
            rate = 35 - 25 * math.cos(2 * math.pi * elapsed / 45)
            client.get(f"/fn/{SHOWN}/")
            if elapsed > 20 and int(elapsed) % 3 == 0:
                client.get("/fn/visits/")
            if not scaled and elapsed > seconds / 2:
                api.patch(f"/v1/functions/{SHOWN}/scale", json={"min": 3}).raise_for_status()
                scaled = True
            time.sleep(1 / rate)


def picture(url: str, token: str, out: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("no chromium on PATH: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url + "/")
        page.fill("input[name=token]", token)
        page.click("form.login button[type=submit]")
        page.locator("table.functions").wait_for()
        page.goto(f"{url}/#/fn/{SHOWN}")
        page.wait_for_function("() => window.hearth.charts.rps?.data[0].length > 30")
        page.locator("table.instances tbody tr").first.wait_for()
        page.wait_for_timeout(2500)  # one more refresh: logs and events filled in too
        page.screenshot(path=out, full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90, help="of traffic (default 90)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hearth-screenshot-") as folder:
        data = Path(folder) / "data"
        daemon, state = start(data)
        try:
            token = (data / "token").read_text().strip()
            headers = {"authorization": f"Bearer {token}"}
            with httpx.Client(base_url=state["api"], headers=headers, timeout=120) as api:
                wait_deployed(api)
                hearth(data, "deploy", str(ROOT / "examples" / SHOWN))
                hearth(data, "traffic", SHOWN, "1=80", "2=20")
                traffic(state["gateway"], api, options.seconds)
            picture(state["api"], token, options.out)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
    print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
