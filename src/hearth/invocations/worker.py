"""The daemon's side of asynchronous invocations: `accept` stores what the gateway hands
over, and a worker loop replays each due invocation through the daemon's own gateway
(over loopback, as an internal request), at most `[async] share` of the function's
capacity at once, and records the outcome: done, queued again after a backoff, or failed.

The loop wakes when an invocation is accepted or retried, when an attempt ends (a slot is
free) and when the next retry is due; it never polls for fresh work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable

import httpx

from hearth.gateway.deferred import Deferred, Unacceptable
from hearth.invocations import policy
from hearth.invocations.callbacks import Callbacks, Record
from hearth.invocations.lanes import Lanes
from hearth.invocations.model import MAX_RESULT, Request, Result, new_id
from hearth.invocations.store import InvocationStore
from hearth.spec import Async, FunctionSpec

log = logging.getLogger("hearth")
SWEEP_EVERY = 60.0  # seconds between removals of finished invocations past their `keep`
RECHECK = 5.0  # due invocations of a function that serves nothing now: looked at again
GRACE = 30.0  # beyond an attempt's timeout, for the gateway's own 504 to arrive first
EARLY = 0.001  # seconds: a retry due this soon is taken now rather than slept for
# Headers of the request that are not the function's: the callback is the daemon's to use,
# the body is whole (no 100-continue), and x-hearth-* are set by the daemon alone.
NOT_STORED = frozenset({"x-callback-url", "expect"})

# The spec of what serves a function now (its largest share), None when nothing does.
Lookup = Callable[[str], FunctionSpec | None]


class Invocations:
    """Accepts invocations (the gateway's `defer`) and runs them (`start`, `stop`)."""

    def __init__(
        self,
        store: InvocationStore,
        lookup: Lookup,
        record: Record,
        location: Callable[[str], str],
        backoff_base: float = 1.0,
        private: bool = False,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.lookup = lookup
        self.record = record
        self.location = location  # where an invocation's status is read, by id
        self.backoff_base = backoff_base
        self.clock = clock
        self.draw = draw
        self.callbacks = Callbacks(store, record, backoff_base, draw, private)
        self.running: Counter[str] = Counter()  # attempts under way, by function
        # When each function's first queued invocation is due: read from the store once,
        # at start, then kept by every change (the queue is never scanned again).
        self._due: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._attempts: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._lanes = Lanes()
        self._gateway = ""
        self._internal = ""

    def __repr__(self) -> str:
        busy = ", ".join(f"{name}: {n}" for name, n in sorted(self.running.items()))
        return f"<Invocations [running: {sum(self.running.values())}{' | ' if busy else ''}{busy}]>"

    # the gateway's and the API's side

    def accept(self, request: Deferred) -> tuple[str, str]:
        """Store a request to run later (committed before this returns); its id and where
        its status is read. Unacceptable (a 400 to the client) for a callback URL that
        will never be called."""
        headers: list[tuple[str, str]] = []
        callbacks: list[str] = []
        for name, value in request.headers:
            lower = name.lower()
            if lower == "x-callback-url":
                callbacks.append(value.strip())
            elif lower not in NOT_STORED and not lower.startswith("x-hearth-"):
                headers.append((name, value))
        if len(callbacks) > 1:
            raise Unacceptable("more than one X-Callback-Url: send one")
        callback = callbacks[0] if callbacks else None
        if callback is not None:
            problem = policy.callback_problem(callback)
            if problem is not None:
                raise Unacceptable(problem)
        invocation = new_id()
        created = self.clock()
        self.store.add(
            Request(
                id=invocation,
                function=request.function,
                method=request.method,
                url=request.url,
                headers=headers,
                body=request.body,
                request_id=request.request_id,
                attempts=0,
                created=created,
                callback=callback,
            )
        )
        self._note(request.function, created)
        return invocation, self.location(invocation)

    def retry(self, invocation: str) -> bool:
        """Queue a failed invocation (a dead letter) again, with its retries afresh; False
        if it is not failed."""
        function = self.store.function_of(invocation)
        now = self.clock()
        if function is None or not self.store.retry(invocation, now):
            return False
        self._note(function, now)
        return True

    # the worker

    async def start(self, gateway: str, internal: bytes) -> None:
        """Run: what the last daemon left running is queued again, then the loop starts.
        `gateway` is the daemon's own gateway (http://HOST:PORT), `internal` its secret."""
        recovered = self.store.recover(self.clock())
        if recovered:
            log.info("%d asynchronous invocations were interrupted: queued again", recovered)
        for function, first in self.store.due().items():
            self._note(function, first)
        self._gateway = gateway.rstrip("/")
        self._internal = internal.decode("latin-1")
        self.callbacks.start()
        self._loop = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop at once. Attempts under way are abandoned: still `running` in the store,
        they are queued again at the next start (at least once, never lost)."""
        tasks = [*([self._loop] if self._loop else []), *self._attempts]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.callbacks.close()
        await self._lanes.close()

    async def _run(self) -> None:
        next_sweep = 0.0
        while True:
            self._wake.clear()
            now = self.clock()
            try:
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + SWEEP_EVERY
                wait = self._dispatch(now)
            except sqlite3.Error as exc:  # a full disk, say: nothing is lost, try again
                log.error(
                    "asynchronous invocations: the store failed (%s); again in %gs", exc, RECHECK
                )
                wait = RECHECK
            if wait is not None:
                wait = min(wait, next_sweep - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(wait, 0.0))
            else:
                await asyncio.sleep(0)  # claimed some: look again before sleeping

    def _dispatch(self, now: float) -> float | None:
        """Start every due invocation there is a slot for. The seconds until something is
        due (inf: nothing is), or None when some were started (then look again: more may
        be due than were taken)."""
        wait = float("inf")
        started = False
        for function, first in list(self._due.items()):
            if first > now + EARLY:
                wait = min(wait, first - now)
                continue
            spec = self.lookup(function)
            if spec is None:  # not serving now (it failed to start again, say): not lost
                wait = min(wait, RECHECK)
                continue
            free = policy.slots(spec) - self.running[function]
            if free <= 0:
                continue  # the end of an attempt wakes the loop
            for request in self.store.claim(function, free, now + EARLY):
                self._begin(request, spec.background)
                started = True
            self._refresh(function)
        return None if started else wait

    def _note(self, function: str, due: float) -> None:
        """An invocation of `function` is due at `due`: the loop looks then (or now)."""
        known = self._due.get(function)
        if known is None or due < known:
            self._due[function] = due
        self._wake.set()

    def _refresh(self, function: str) -> None:
        first = self.store.first_due(function)
        if first is None:
            self._due.pop(function, None)
        else:
            self._due[function] = first

    def _begin(self, request: Request, settings: Async) -> None:
        self.running[request.function] += 1
        task = asyncio.ensure_future(self._attempt(request, settings))
        self._attempts.add(task)
        task.add_done_callback(self._attempts.discard)

    async def _attempt(self, request: Request, settings: Async) -> None:
        result: Result | None = None
        try:
            try:
                outgoing = self._outgoing(request, settings.timeout)
            except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
                error: str | None = f"the request cannot be sent again: {exc}"
                final = True  # no retry will send it either
            else:
                result, error = await self._send(outgoing, settings.timeout)
                final = False
        finally:
            self.running[request.function] -= 1
            if self.running[request.function] <= 0:
                del self.running[request.function]
            self._wake.set()  # a slot is free
        try:
            self._settle(request, settings, result, error, final)
        except sqlite3.Error as exc:  # left running: queued again at the next start
            log.error("invocation %s: its outcome could not be stored: %s", request.id, exc)

    def _outgoing(self, request: Request, timeout: float) -> httpx.Request:
        """The request as stored, to the daemon's own gateway, as the daemon's (past a
        private function's keys and rate limit, with the invocation's longer timeout)."""
        headers = [
            *request.headers,
            ("x-hearth-internal", self._internal),
            ("x-hearth-timeout", f"{timeout:g}"),
            ("x-hearth-invocation-id", request.id),
            ("x-hearth-attempt", str(request.attempts)),
        ]
        if request.request_id:
            headers.append(("x-request-id", request.request_id))
        return httpx.Request(
            request.method, self._gateway + request.url, headers=headers, content=request.body
        )

    async def _send(
        self, outgoing: httpx.Request, timeout: float
    ) -> tuple[Result | None, str | None]:
        """One attempt: the answer (its body up to MAX_RESULT), or what went wrong."""
        try:
            async with asyncio.timeout(timeout + GRACE), self._lanes.lane() as http:
                response = await http.send(outgoing, stream=True)
                try:
                    body = bytearray()
                    truncated = False
                    async for chunk in response.aiter_raw():
                        body += chunk
                        if len(body) > MAX_RESULT:
                            del body[MAX_RESULT:]
                            truncated = True
                            break
                finally:
                    await response.aclose()
        except TimeoutError:
            return None, f"no complete answer within {timeout + GRACE:g}s"
        except httpx.HTTPError as exc:
            return None, f"the gateway did not answer: {type(exc).__name__}: {exc}"[:300]
        pairs = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in response.headers.raw]
        return Result(response.status_code, pairs, bytes(body), truncated), None

    def _settle(
        self,
        request: Request,
        settings: Async,
        result: Result | None,
        error: str | None,
        final: bool = False,
    ) -> None:
        """Record what the attempt came to: done, queued again after a backoff, or failed."""
        now = self.clock()
        verdict = "failed" if final else policy.judge(result.status if result else None)
        if result is not None and verdict != "done":
            error = policy.failure(result.status, result.body)
        step = policy.after(verdict, request.attempts, settings.retries)
        if step == "queued":
            delay = policy.backoff(request.attempts, self.backoff_base, self.draw())
            if self.store.requeue(request.id, now + delay, error or "", now):
                self._note(request.function, now + delay)
            return
        kept = self.store.finish(
            request.id,
            step,
            result,
            error if step == "failed" else None,
            now + settings.keep,
            now,
        )
        if not kept:
            return  # the function was removed meanwhile, and its invocations with it
        tries = f"{request.attempts} attempt{'s' if request.attempts != 1 else ''}"
        took = f"{now - request.created:.1f}s"
        if step == "done":
            assert result is not None
            message = f"invocation {request.id} done: {result.status} after {tries}, {took}"
            self.record(request.function, "invocation", message)
        else:
            message = f"invocation {request.id} failed after {tries}, {took}: {error}"
            self.record(request.function, "invocation-failed", message[:1000])
        if request.callback is not None:
            self.callbacks.send(request.id)

    def _sweep(self, now: float) -> None:
        removed = self.store.sweep(now)
        if removed:
            log.info("removed %d finished asynchronous invocations past their keep", removed)
