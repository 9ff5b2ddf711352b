"""The gateway's own responses: small JSON bodies a person can act on."""

import json
from collections.abc import Iterable
from http import HTTPStatus


def error_response(
    status: int,
    message: str,
    function: str | None = None,
    close: bool = False,
    extra: Iterable[tuple[str, str]] = (),
) -> bytes:
    """The whole answer; `extra` headers too (e.g. WWW-Authenticate, Retry-After)."""
    body: dict[str, object] = {"error": message, "status": status}
    if function is not None:
        body["function"] = function
    payload = json.dumps(body).encode() + b"\n"
    headers = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(payload)}",
        "server: hearth",
    ]
    if status == 503:
        headers.append("retry-after: 1")
    headers.extend(f"{name}: {value}" for name, value in extra)
    if close:
        headers.append("connection: close")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload
