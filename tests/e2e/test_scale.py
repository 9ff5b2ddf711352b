"""Scaling on the real daemon: a burst from zero, live settings, the autoscaler's events."""

from __future__ import annotations

import asyncio
import re
import time

import httpx

from tests.e2e.conftest import wait_for

PATIENT = """
import asyncio, os

async def handle(request):
    await asyncio.sleep(0.05)
    return {"pid": os.getpid()}
"""


def test_a_burst_from_zero_is_answered_in_full(daemon, fn_dir):
    """500 clients at once against a function with no instance: every request waits for
    the instances the burst starts, none is refused."""
    folder = fn_dir(
        "burst",
        {"main.py": PATIENT, "hearth.toml": '[scale]\nmin = 0\nmax = 20\nidle = "2s"\n'},
    )
    daemon.deploy(folder)
    wait_for(lambda: daemon.status("burst")["instances"] == [], what="zero instances")

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            answers = await asyncio.gather(
                *(client.get(f"{daemon.gateway}/fn/burst/") for _ in range(500)),
                return_exceptions=True,
            )
        return [a.status_code if isinstance(a, httpx.Response) else repr(a) for a in answers]

    began = time.monotonic()
    codes = asyncio.run(burst())
    took = time.monotonic() - began
    print(f"500 requests from zero in {took:.2f}s")
    assert codes == [200] * 500, sorted(set(map(str, codes)))
    scaled = _scale_events(daemon, "burst")
    ups = [m for m in scaled if re.match(r"scaled (\d+) -> (\d+): (burst|panic|stable)", m)]
    assert ups and ups[0].startswith("scaled 0 -> "), scaled
    assert max(int(re.match(r"scaled \d+ -> (\d+)", m)[1]) for m in ups) > 1, scaled
    wait_for(
        lambda: daemon.status("burst")["instances"] == [],
        timeout=30,
        what="back to zero once idle",
    )
    assert any("no requests for 2s" in m for m in _scale_events(daemon, "burst"))


def test_scale_settings_change_live_and_last(fresh_daemon, fn_dir):
    folder = fn_dir("tunable", {"main.py": "def handle(request):\n    return 'ok'\n"})
    daemon = fresh_daemon.start()
    daemon.deploy(folder)
    assert len(daemon.status("tunable")["instances"]) == 1

    result = daemon.cli("scale", "tunable", "--min", "3", "--max", "5", check=True)
    assert "min 1 -> 3, max 8 -> 5" in result.stdout
    wait_for(lambda: len(daemon.status("tunable")["instances"]) == 3, what="three instances")
    assert daemon.status("tunable")["spec"]["scale"]["min"] == 3
    assert ("scale-settings", "min 1 -> 3, max 8 -> 5") in [
        (e["kind"], e["message"]) for e in daemon.events("tunable")
    ]

    refused = daemon.cli("scale", "tunable", "--min", "9")
    assert refused.returncode == 1
    assert "min = 9 is more than max = 5" in refused.stderr
    with daemon.api_client() as api:
        answer = api.patch("/v1/functions/tunable/scale", json={"concurrency": 4})
        assert answer.status_code == 422
        answer = api.patch(
            "/v1/functions/tunable/scale", json={"window": "2s", "panic_window": "5s"}
        )
        assert answer.status_code == 409  # refused; what serves keeps its settings
        assert "need panic_window <= window" in answer.json()["error"]
        assert api.patch("/v1/functions/nope/scale", json={"min": 1}).status_code == 404
    assert daemon.status("tunable")["spec"]["scale"]["min"] == 3  # refusals changed nothing

    daemon.stop()
    daemon.start()
    wait_for(lambda: len(daemon.status("tunable")["instances"]) == 3, what="three after restart")

    daemon.deploy(folder)  # a new version brings its own hearth.toml (min 1)
    assert daemon.status("tunable")["spec"]["scale"]["min"] == 1


def _scale_events(daemon, name: str) -> list[str]:
    return [e["message"] for e in daemon.events(name) if e["kind"] == "scale"]
