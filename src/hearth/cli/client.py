"""Finding the daemon and talking to its API."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx


class ClientError(RuntimeError):
    """Something the user can act on: the daemon is not running, a request failed, ..."""


def data_dir(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    return Path(os.environ.get("HEARTH_DATA_DIR", ".hearth"))


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url, headers={"authorization": f"Bearer {token}"}, timeout=None
        )

    @classmethod
    def discover(cls, explicit_dir: Path | None = None) -> Api:
        """HEARTH_URL/HEARTH_TOKEN, else the data directory of a local daemon."""
        url = os.environ.get("HEARTH_URL")
        token = os.environ.get("HEARTH_TOKEN")
        folder = data_dir(explicit_dir)
        if url is None:
            state = folder / "daemon.json"
            if not state.exists():
                raise ClientError(
                    f"no running daemon found in {folder} (no daemon.json): start one with "
                    "'hearth up', or set HEARTH_URL and HEARTH_TOKEN"
                )
            url = json.loads(state.read_text())["api"]
        if token is None:
            token_file = folder / "token"
            if not token_file.exists():
                raise ClientError(f"no token: set HEARTH_TOKEN or run the daemon in {folder}")
            token = token_file.read_text().strip()
        return cls(url, token)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The answer's JSON (or text), or ClientError with the API's message."""
        response = self.raw(method, path, **kwargs)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response itself (for bytes), or ClientError with the API's message."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach the hearth API at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise ClientError(_error_text(response))
        return response

    def download(self, path: str, target: Path) -> None:
        """A GET streamed into `target` (0600), whole or not at all."""
        partial = target.with_name(f".{target.name}.partial")
        try:
            with self.http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ClientError(_error_text(response))
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    for chunk in response.iter_bytes():
                        fh.write(chunk)
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise ClientError(f"cannot reach the hearth API at {self.url}: {exc}") from exc
        os.replace(partial, target)

    def stream_lines(self, method: str, path: str, **kwargs: Any) -> Iterator[str]:
        try:
            with self.http.stream(method, path, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ClientError(_error_text(response))
                yield from response.iter_lines()
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach the hearth API at {self.url}: {exc}") from exc


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:500]}"
