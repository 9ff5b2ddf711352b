"""Deploying over HTTP: the bundle in, progress out as JSON lines until a last line.

The deploy itself runs as a background task of the control plane, apart from the answer: a
client that goes away does not stop it halfway, and whatever it raises ends the stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import HTTPException, Request

from hearth.control import ControlPlane, DeployError

log = logging.getLogger("hearth")


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The whole body, refused (413) as soon as it is over `limit` bytes."""
    declared = request.headers.get("content-length") or "0"
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"{what} is {declared} bytes, over the limit of {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"{what} is over the limit of {limit} bytes")
    return bytes(body)


async def read_bundle(request: Request, limit: int) -> bytes:
    """The bundle: the whole body, not empty, at most `limit` bytes."""
    body = await read_body(request, limit, "the bundle")
    if not body:
        raise HTTPException(400, "the body is empty: send the bundle (a tar.gz) as the body")
    return body


async def deploy_stream(plane: ControlPlane, name: str, data: bytes) -> AsyncIterator[str]:
    """Progress as JSON lines, then one last line: {"result": ...} or {"error": ...}."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def run() -> None:
        # Whatever happens, the stream gets a last line: a client must never wait forever.
        last: dict[str, Any] = {
            "error": "the daemon stopped before the deploy finished; deploy again once it runs"
        }
        try:
            result = await plane.rollouts.deploy(
                name, data, lambda line: queue.put_nowait({"log": line})
            )
            last = {"result": result}
        except DeployError as exc:
            last = {"error": str(exc)}
        except Exception as exc:
            log.exception("deploying %s failed", name)
            last = {
                "error": f"internal error: {type(exc).__name__}: {exc}; "
                "the previous version keeps serving"
            }
        finally:
            queue.put_nowait(last)

    # The deploy goes on even if the client disconnects: a half-finished deploy is worse.
    plane.reconciler.background(run())
    while True:
        message = await queue.get()
        yield json.dumps(message) + "\n"
        if "log" not in message:
            return
