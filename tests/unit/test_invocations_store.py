"""Invocations in the state database: accept, claim, finish, retry, recovery, retention;
and what `accept` keeps of a request."""

import base64
from dataclasses import replace

import pytest

from hearth.gateway.deferred import Deferred, Unacceptable
from hearth.invocations import ID, Invocations, InvocationStore
from hearth.invocations.model import MAX_RESULT, Request, Result
from hearth.store import Store


@pytest.fixture
def store(tmp_path):
    state = Store(tmp_path / "hearth.db")
    yield InvocationStore(state.db)
    state.close()


def request(
    number: int, function: str = "f", created: float = 100.0, callback: str | None = None
) -> Request:
    return Request(
        id=f"inv-{number}",
        function=function,
        method="POST",
        url=f"/fn/{function}/?n={number}",
        headers=[("Host", "127.0.0.1:8080"), ("Content-Type", "text/plain")],
        body=b"body %d" % number,
        request_id=f"req-{number}",
        attempts=0,
        created=created,
        callback=callback,
    )


OK = Result(200, [("content-type", "text/plain")], b"fine", False)


def test_an_accepted_invocation_is_queued_and_due_at_once(store):
    store.add(request(1))
    found = store.get("inv-1")
    assert found is not None
    assert (found.status, found.attempts, found.next_try, found.result) == (
        "queued",
        0,
        100.0,
        None,
    )
    assert store.due() == {"f": 100.0}
    assert store.first_due("f") == 100.0 and store.first_due("g") is None
    assert store.function_of("inv-1") == "f" and store.function_of("nope") is None
    assert store.counts("f") == {"queued": 1, "running": 0, "done": 0, "failed": 0}
    assert store.get("nope") is None


def test_a_claim_takes_the_oldest_due_up_to_the_limit_and_counts_the_attempt(store):
    for n in range(1, 5):
        store.add(request(n, created=100.0 + n))
    store.add(request(9, function="g", created=100.0))
    assert store.claim("f", 2, now=101.5) == [replace(request(1, created=101.0), attempts=1)]
    claimed = store.claim("f", 2, now=200.0)
    assert [r.id for r in claimed] == ["inv-2", "inv-3"]
    assert all(r.attempts == 1 and r.body.startswith(b"body") for r in claimed)
    assert claimed[0].headers == [("Host", "127.0.0.1:8080"), ("Content-Type", "text/plain")]
    assert store.get("inv-2").status == "running"
    assert store.claim("f", 10, now=200.0)[0].id == "inv-4"
    assert store.claim("f", 10, now=200.0) == []  # nothing left queued
    assert store.due() == {"g": 100.0}


def test_a_requeued_invocation_waits_for_its_next_try(store):
    store.add(request(1))
    store.claim("f", 1, now=100.0)
    assert store.requeue("inv-1", next_try=105.0, error="500 Internal Server Error", now=101.0)
    assert store.claim("f", 1, now=104.0) == []
    assert store.due() == {"f": 105.0} and store.first_due("f") == 105.0
    found = store.get("inv-1")
    assert (found.status, found.last_error, found.next_try) == (
        "queued",
        "500 Internal Server Error",
        105.0,
    )
    (again,) = store.claim("f", 1, now=105.0)
    assert again.attempts == 2


def test_finished_invocations_keep_their_result_until_they_expire(store):
    store.add(request(1))
    store.add(request(2))
    store.claim("f", 2, now=100.0)
    assert store.finish("inv-1", "done", OK, None, expires=500.0, now=110.0)
    failed = Result(500, [], b"boom", False)
    assert store.finish("inv-2", "failed", failed, "500 Internal Server Error: boom", 600.0, 111.0)
    done = store.get("inv-1")
    assert (done.status, done.result, done.result_status, done.updated) == ("done", OK, 200, 110.0)
    assert done.describe()["result"] == {
        "status": 200,
        "headers": [["content-type", "text/plain"]],
        "body": "fine",
        "base64": False,
        "truncated": False,
    }
    dead = store.get("inv-2")
    assert (dead.status, dead.last_error, dead.result.body) == (
        "failed",
        "500 Internal Server Error: boom",
        b"boom",
    )
    assert not store.finish("inv-1", "done", OK, None, 500.0, 120.0)  # not running any more
    assert store.sweep(now=499.0) == 0
    assert store.sweep(now=550.0) == 1
    assert store.get("inv-1") is None and store.get("inv-2") is not None
    assert store.sweep(now=10_000.0) == 1
    assert store.counts("f") == {"queued": 0, "running": 0, "done": 0, "failed": 0}


def test_an_unfinished_invocation_is_never_swept(store):
    store.add(request(1))
    store.add(request(2))
    store.claim("f", 1, now=100.0)
    assert store.sweep(now=1e12) == 0
    assert store.counts("f") == {"queued": 1, "running": 1, "done": 0, "failed": 0}


def test_a_body_that_is_not_utf8_is_shown_in_base64(store):
    store.add(request(1))
    store.claim("f", 1, now=100.0)
    store.finish("inv-1", "done", Result(200, [], b"\x89PNG\xff", True), None, 500.0, 101.0)
    shown = store.get("inv-1").describe()["result"]
    assert base64.b64decode(shown["body"]) == b"\x89PNG\xff"
    assert shown["base64"] is True and shown["truncated"] is True


def test_only_a_failed_invocation_is_retried_with_its_retries_afresh(store):
    store.add(request(1, callback="http://127.0.0.1:9/cb"))
    store.claim("f", 1, now=100.0)
    assert not store.retry("inv-1", now=101.0)  # running
    store.finish("inv-1", "failed", None, "no answer", 500.0, 102.0)
    assert store.get("inv-1").callback_state == "pending"
    store.callback_done("inv-1", "failed")
    assert store.retry("inv-1", now=103.0)
    again = store.get("inv-1")
    assert (again.status, again.attempts, again.next_try, again.result) == (
        "queued",
        0,
        103.0,
        None,
    )
    assert again.last_error == "no answer"  # until an attempt says otherwise
    assert again.callback_state is None  # sent again once it finishes again
    assert store.sweep(now=1e12) == 0  # queued: no expiry any more
    assert not store.retry("inv-1", now=104.0)  # queued
    assert not store.retry("unknown", now=104.0)


def test_what_was_running_at_a_crash_is_queued_again_with_its_attempt_counted(store):
    store.add(request(1))
    store.add(request(2))
    store.claim("f", 1, now=100.0)
    assert store.recover(now=300.0) == 1
    found = store.get("inv-1")
    assert (found.status, found.attempts, found.next_try) == ("queued", 1, 300.0)
    assert "interrupted" in found.last_error
    assert store.get("inv-2").status == "queued"
    claimed = store.claim("f", 2, now=300.0)
    assert [(r.id, r.attempts) for r in claimed] == [("inv-2", 1), ("inv-1", 2)]  # by due time
    assert store.recover(now=301.0) == 2


def test_lists_are_newest_first_by_status_without_results(store):
    for n in range(1, 4):
        store.add(request(n, created=100.0 + n))
    store.claim("f", 1, now=200.0)
    store.finish("inv-1", "done", OK, None, 900.0, 201.0)
    assert [i.id for i in store.listing("f", None, 10)] == ["inv-3", "inv-2", "inv-1"]
    assert [i.id for i in store.listing("f", "queued", 10)] == ["inv-3", "inv-2"]
    assert [i.id for i in store.listing("f", None, 1)] == ["inv-3"]
    assert store.listing("g", None, 10) == []
    (done,) = store.listing("f", "done", 10)
    assert done.result is None and done.brief()["result_status"] == 200
    assert "result" not in done.brief()


def test_pending_callbacks_are_found_again_until_settled(store):
    store.add(request(1, callback="http://127.0.0.1:9/cb"))
    store.add(request(2))
    store.claim("f", 2, now=100.0)
    store.finish("inv-1", "done", OK, None, 900.0, 101.0)
    store.finish("inv-2", "done", OK, None, 900.0, 101.0)
    assert store.pending_callbacks() == ["inv-1"]
    assert store.get("inv-2").callback_state is None
    store.callback_done("inv-1", "delivered")
    assert store.pending_callbacks() == []
    assert store.get("inv-1").describe()["callback"] == {
        "url": "http://127.0.0.1:9/cb",
        "state": "delivered",
    }


def test_removing_a_function_removes_its_invocations(tmp_path):
    state = Store(tmp_path / "hearth.db")
    store = InvocationStore(state.db)
    state.new_version("f", "bundle", "env", {"name": "f"})
    store.add(request(1))
    store.add(request(2, function="g"))
    state.remove("f")
    assert store.get("inv-1") is None and store.get("inv-2") is not None
    state.close()


def deferred(*headers: tuple[str, str]) -> Deferred:
    return Deferred("f", "POST", "/fn/f/", [("Host", "x"), *headers], b"data", "rid")


def invocations(store) -> Invocations:
    return Invocations(
        store,
        lookup=lambda name: None,
        record=lambda *event: None,
        location=lambda invocation: f"http://api/v1/invocations/{invocation}",
        clock=lambda: 50.0,
    )


def test_accept_stores_the_request_and_answers_its_id_and_location(store):
    front = invocations(store)
    invocation, location = front.accept(
        deferred(
            ("Content-Type", "image/png"),
            ("X-Callback-Url", " http://127.0.0.1:9/cb "),
            ("X-Hearth-Invocation-Id", "forged"),
            ("x-hearth-attempt", "7"),
            ("Expect", "100-continue"),
        )
    )
    assert ID.fullmatch(invocation) and location == f"http://api/v1/invocations/{invocation}"
    found = store.get(invocation)
    assert (found.status, found.callback, found.request_id, found.created) == (
        "queued",
        "http://127.0.0.1:9/cb",
        "rid",
        50.0,
    )
    (replayed,) = store.claim("f", 1, now=50.0)
    # what the daemon sets is never taken from the client; the callback is the daemon's
    assert replayed.headers == [("Host", "x"), ("Content-Type", "image/png")]
    assert replayed.body == b"data"
    assert front.accept(deferred())[0] != invocation  # a new id each time


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Callback-Url", "ftp://example.com/")],
        [("X-Callback-Url", "http://a/"), ("x-callback-url", "http://b/")],
    ],
)
def test_accept_refuses_a_callback_that_cannot_be_made_and_stores_nothing(store, headers):
    with pytest.raises(Unacceptable):
        invocations(store).accept(deferred(*headers))
    assert store.counts("f") == {"queued": 0, "running": 0, "done": 0, "failed": 0}


def test_results_are_cut_at_a_mebibyte():
    assert MAX_RESULT == 1024**2
