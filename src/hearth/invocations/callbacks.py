"""Callbacks: a finished invocation's result (what GET /v1/invocations/ID answers) POSTed to
the X-Callback-Url its request gave, with retries. A callback that cannot be delivered is
an event of the function and changes nothing else; one due when the daemon stopped is
sent at the next start."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
import socket
import sqlite3
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from hearth.invocations.policy import backoff, failure
from hearth.invocations.store import InvocationStore

log = logging.getLogger("hearth")
RETRIES = 3  # after the first try
TIMEOUT = 30.0  # seconds for each try
AT_ONCE = 16  # callbacks being sent at once, for all functions

Record = Callable[[str, str, str], None]  # an event: function, kind, message


class Callbacks:
    def __init__(
        self,
        store: InvocationStore,
        record: Record,
        backoff_base: float = 1.0,
        draw: Callable[[], float] = random.random,
        private: bool = False,
    ) -> None:
        self.private = private  # loopback and private addresses allowed
        self.store = store
        self.record = record
        self.backoff_base = backoff_base
        self.draw = draw
        self._http: httpx.AsyncClient | None = None
        self._at_once = asyncio.Semaphore(AT_ONCE)
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<Callbacks [{len(self._tasks)} being sent]>"

    def start(self) -> None:
        """Begin sending: the callbacks left pending by the last daemon first."""
        self._http = httpx.AsyncClient(timeout=TIMEOUT, trust_env=False, follow_redirects=False)
        for invocation in self.store.pending_callbacks():
            self.send(invocation)

    def send(self, invocation: str) -> None:
        """Deliver the invocation's callback, now that it is finished (in the background)."""
        task = asyncio.ensure_future(self._settled(invocation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop sending; what was not delivered stays pending for the next start."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    async def _settled(self, invocation: str) -> None:
        try:
            await self._deliver(invocation)
        except sqlite3.Error as exc:  # still pending: sent at the next start
            log.error("callback of invocation %s: the store failed: %s", invocation, exc)

    async def _deliver(self, invocation: str) -> None:
        found = self.store.get(invocation)
        if found is None or found.callback is None or found.callback_state != "pending":
            return  # removed, or already settled
        url = found.callback
        payload = json.dumps(found.describe()).encode()
        headers = {"content-type": "application/json", "x-hearth-invocation-id": invocation}
        error = ""
        for attempt in range(1, RETRIES + 2):
            error = await self._post(url, payload, headers)
            if not error:
                self.store.callback_done(invocation, "delivered")
                return
            if attempt <= RETRIES:
                await asyncio.sleep(backoff(attempt, self.backoff_base, self.draw()))
        self.store.callback_done(invocation, "failed")
        log.warning("callback of invocation %s to %s failed: %s", invocation, url, error)
        self.record(
            found.function,
            "callback-failed",
            f"invocation {invocation}: callback to {url[:200]} failed after "
            f"{RETRIES + 1} tries: {error}",
        )

    async def _post(self, url: str, payload: bytes, headers: dict[str, str]) -> str:
        """One try; what went wrong, or '' when the receiver took it (a 2xx)."""
        assert self._http is not None, "start() first"
        if not self.private:
            refused = await closed_address(url)
            if refused:
                return refused
        async with self._at_once:
            try:
                response = await self._http.post(url, content=payload, headers=headers)
            except httpx.HTTPError as exc:
                return f"{type(exc).__name__}: {exc}"[:300]
        if 200 <= response.status_code < 300:
            return ""
        return failure(response.status_code, response.content)


async def closed_address(url: str) -> str:
    """Why `url` may not be called back: its host is (or resolves to) a loopback, private,
    link-local or otherwise special address; '' when every address it has is public.

    A caller must not aim the daemon at what only the daemon's own network reaches (its
    API, a database, a metadata service). `hearth up --callback-private` lifts this.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"{host} does not resolve: {exc}"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global or address.is_multicast:
            return (
                f"{host} is {address}, a loopback or private address: refused "
                "(hearth up --callback-private allows it)"
            )
    return ""
