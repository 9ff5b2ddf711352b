"""The worker against a stand-in gateway on loopback: what it sends, how many at once,
retries and outcomes, callbacks; no daemon."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field

import pytest

from hearth.gateway.deferred import Deferred
from hearth.invocations import Invocations, InvocationStore
from hearth.spec import Async, FunctionSpec, Scale
from hearth.store import Store


@dataclass
class Gateway:
    """Answers each request with the next of `answers` (then 200), holding it while
    `hold` is clear; records every request."""

    answers: list[int] = field(default_factory=list)
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    in_flight: int = 0
    most: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *fields = head.decode("latin-1").split("\r\n")[:-2]
                headers = {}
                for item in fields:
                    name, _, value = item.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.seen.append((line, headers, body))
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
                await self.hold.wait()
                self.in_flight -= 1
                status = self.answers.pop(0) if self.answers else 200
                payload = f"answer {len(self.seen)}".encode()
                writer.write(
                    b"HTTP/1.1 %d X\r\ncontent-length: %d\r\nx-made-by: stand-in\r\n\r\n%b"
                    % (status, len(payload), payload)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


@pytest.fixture
async def setup(tmp_path):
    state = Store(tmp_path / "hearth.db")
    events: list[tuple[str, str, str]] = []
    stand_in = Gateway()
    server = await asyncio.start_server(stand_in.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    specs = {"f": FunctionSpec(name="f", scale=Scale(max=1, concurrency=4))}  # 2 slots
    worker = Invocations(
        InvocationStore(state.db),
        lookup=specs.get,
        record=lambda *event: events.append(event),
        location=lambda invocation: f"http://api/v1/invocations/{invocation}",
        backoff_base=0.001,
        private=True,  # the callback receivers here listen on 127.0.0.1
    )
    await worker.start(f"http://127.0.0.1:{port}", b"secret")
    yield worker, stand_in, events, specs
    await worker.stop()
    server.close()
    await stand_in.close()
    await server.wait_closed()
    state.close()


def deferred(path: str = "/fn/f/x?y=1", *headers: tuple[str, str]) -> Deferred:
    return Deferred("f", "PUT", path, [("Host", "f.localhost:8080"), *headers], b"data", "rid")


async def until(predicate, what: str):
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_replay_is_the_request_as_accepted_with_the_daemons_headers(setup):
    worker, stand_in, events, _ = setup
    stand_in.hold.set()
    invocation, _ = worker.accept(deferred("/fn/f/x?y=1", ("Content-Type", "text/plain")))
    await until(lambda: worker.store.get(invocation).status == "done", "done")
    ((line, headers, body),) = stand_in.seen
    assert line == "PUT /fn/f/x?y=1 HTTP/1.1" and body == b"data"
    assert headers["host"] == "f.localhost:8080"  # routing by host works again
    assert headers["content-type"] == "text/plain"
    assert headers["x-hearth-internal"] == "secret"
    assert headers["x-hearth-timeout"] == "900"  # [async] timeout, not [limits] timeout
    assert headers["x-hearth-invocation-id"] == invocation
    assert headers["x-hearth-attempt"] == "1"
    assert headers["x-request-id"] == "rid"
    result = worker.store.get(invocation).result
    assert (result.status, result.body) == (200, b"answer 1")
    assert ("x-made-by", "stand-in") in result.headers
    assert events == [("f", "invocation", events[0][2])]
    assert events[0][2].startswith(f"invocation {invocation} done: 200 after 1 attempt,")


async def test_at_most_its_share_of_capacity_runs_at_once(setup):
    worker, stand_in, _, _ = setup
    ids = [worker.accept(deferred())[0] for _ in range(5)]
    await until(lambda: stand_in.in_flight == 2, "two attempts")
    for _ in range(20):  # the loop has every chance to start a third: it does not
        await asyncio.sleep(0.01)
    assert stand_in.in_flight == 2 and worker.store.counts("f")["queued"] == 3
    stand_in.hold.set()
    await until(lambda: worker.store.counts("f")["done"] == 5, "all five done")
    assert stand_in.most == 2
    assert {worker.store.get(i).status for i in ids} == {"done"}


async def test_failures_are_retried_then_a_dead_letter_then_retried_by_hand(setup):
    worker, stand_in, events, specs = setup
    specs["f"] = FunctionSpec(name="f", background=Async(retries=2))
    stand_in.answers = [503, 429, 500]
    stand_in.hold.set()
    invocation, _ = worker.accept(deferred())
    await until(lambda: worker.store.get(invocation).status == "failed", "a dead letter")
    dead = worker.store.get(invocation)
    assert dead.attempts == 3 and dead.last_error.startswith("500 Internal Server Error")
    assert [h["x-hearth-attempt"] for _, h, _ in stand_in.seen] == ["1", "2", "3"]
    assert {h["x-hearth-invocation-id"] for _, h, _ in stand_in.seen} == {invocation}
    assert [kind for _, kind, _ in events] == ["invocation-failed"]
    assert worker.retry(invocation) and not worker.retry(invocation)
    await until(lambda: worker.store.get(invocation).status == "done", "done after retry")
    assert worker.store.get(invocation).attempts == 1


async def test_a_client_error_is_failed_at_once(setup):
    worker, stand_in, _, _ = setup
    stand_in.answers = [422]
    stand_in.hold.set()
    invocation, _ = worker.accept(deferred())
    await until(lambda: worker.store.get(invocation).status == "failed", "failed")
    assert worker.store.get(invocation).attempts == 1 and len(stand_in.seen) == 1


async def test_a_function_that_serves_nothing_keeps_its_invocations_queued(setup):
    worker, stand_in, _, specs = setup
    stand_in.hold.set()
    del specs["f"]
    invocation, _ = worker.accept(deferred())
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert worker.store.get(invocation).status == "queued" and stand_in.seen == []


async def test_the_callback_gets_what_get_shows(setup):
    worker, stand_in, _, _ = setup
    received: list[dict] = []

    async def hook(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        received.append(json.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(hook, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    stand_in.hold.set()
    invocation, _ = worker.accept(deferred("/fn/f/", ("X-Callback-Url", url)))
    await until(lambda: worker.store.get(invocation).callback_state == "delivered", "delivered")
    server.close()
    await server.wait_closed()
    (sent,) = received
    assert sent["id"] == invocation and sent["status"] == "done"
    assert sent["result"]["body"] == "answer 1"
    assert "x-callback-url" not in stand_in.seen[0][1]
