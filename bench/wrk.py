"""Run wrk and read its report: req/s, p50/p99 latency, errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

INSTALL_HINT = "wrk is missing: install it with 'apt-get update && apt-get install -y wrk'"


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def require() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(INSTALL_HINT)
    return path


def run(
    url: str, seconds: float, connections: int = 32, threads: int = 1, closes: bool = False
) -> Run:
    """`closes`: the server ends every connection after its response (HTTP/1.0), which wrk
    counts as a read error; those are not errors of the server."""
    out = subprocess.run(
        [
            require(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "--timeout",
            "10s",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse(out, closes)


def parse(out: str, closes: bool = False) -> Run:
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    requests = int(_find(r"(\d+) requests in", out))
    errors = int(_find(r"Non-2xx or 3xx responses:\s+(\d+)", out, "0"))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket:
        connect, read, write, timeout = (int(n) for n in socket.groups())
        errors += connect + write + timeout + (max(0, read - requests) if closes else read)
    return Run(rps, _latency(out, "50%"), _latency(out, "99%"), errors, requests)


def _find(pattern: str, text: str, default: str | None = None) -> str:
    match = re.search(pattern, text)
    if match is None:
        if default is None:
            raise ValueError(f"wrk output has no {pattern!r}:\n{text}")
        return default
    return match.group(1)


def _latency(out: str, pct: str) -> float:
    match = re.search(rf"^\s+{re.escape(pct)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if match is None:
        return 0.0
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
