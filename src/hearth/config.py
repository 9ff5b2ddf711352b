"""The daemon's settings: one typed object, built once (CLI flags and HEARTH_* variables)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hearth.gateway.config import GatewayConfig


@dataclass(frozen=True)
class DaemonConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    api_host: str = "127.0.0.1"
    api_port: int = 8081
    domain: str = "localhost"
    max_bundle: int = 50 * 1000**2
    sandbox: str = "auto"  # off | auto | strict (hearth.sandbox.plan)
    index_url: str | None = None  # the package index environments are built from
    metrics: bool = True  # count requests in the gateway (metrics, history, top)
    access_log: bool = True  # a line per request in the function's access log
    otlp: str | None = None  # an OpenTelemetry collector's endpoint: a span per request
    backup_every: float | None = None  # seconds between scheduled backups (None: none)
    backup_keep: int = 14  # scheduled backups kept, newest first
    backup_dir: Path | None = None  # where they go (default: DATA_DIR/backups)
    # Seconds before an asynchronous invocation's (or a callback's) first retry, doubling
    # after each (at most 5 minutes). Tests shorten it; an operator may too.
    async_backoff: float = 1.0
    # Callbacks may go to loopback and private addresses (default: refused, so a caller
    # cannot aim the daemon at what only the daemon's network reaches).
    callback_private: bool = False
    gateway: GatewayConfig = field(default_factory=GatewayConfig)

    @property
    def gateway_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://{_url_host(self.api_host)}:{self.api_port}"

    def function_urls(self, name: str) -> list[str]:
        return [f"{self.gateway_url}/fn/{name}/", f"http://{name}.{self.domain}:{self.port}/"]


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
