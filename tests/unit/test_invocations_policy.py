"""The pure decisions about asynchronous invocations: outcomes, backoff, slots, callbacks."""

import pytest

from hearth.invocations.policy import (
    BACKOFF_CAP,
    after,
    backoff,
    callback_problem,
    failure,
    judge,
    slots,
)
from hearth.spec import Async, FunctionSpec, Scale


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299, 301, 304])
def test_an_answer_below_400_is_done(status):
    assert judge(status) == "done"


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599, 429, None])
def test_server_errors_rate_limits_and_no_answer_are_tried_again(status):
    assert judge(status) == "retry"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 413, 422, 451])
def test_other_client_errors_fail_at_once(status):
    assert judge(status) == "failed"


def test_a_retry_is_queued_while_retries_are_left():
    # retries = 3: attempts 1, 2 and 3 may fail and be tried again; the 4th is the last
    assert [after("retry", n, 3) for n in (1, 2, 3, 4)] == ["queued"] * 3 + ["failed"]
    assert after("retry", 1, 0) == "failed"
    assert after("done", 4, 3) == "done"
    assert after("failed", 1, 3) == "failed"


def test_backoff_doubles_from_the_base_up_to_five_minutes():
    nominal = [backoff(n, 1.0, draw=0.5) for n in range(1, 12)]
    assert nominal[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert nominal[-1] == BACKOFF_CAP == 300.0
    assert backoff(3, 0.05, draw=0.5) == pytest.approx(0.2)
    assert backoff(10_000, 1.0, draw=0.99) == BACKOFF_CAP  # no overflow, never past the cap


def test_backoff_is_spread_by_the_draw():
    low, high = backoff(4, 1.0, draw=0.0), backoff(4, 1.0, draw=0.999999)
    assert low == pytest.approx(6.4) and high == pytest.approx(9.6, abs=1e-4)
    assert backoff(20, 1.0, draw=0.0) == pytest.approx(240.0)  # 0.8 x the cap


def test_slots_are_the_share_of_capacity_at_least_one():
    assert slots(FunctionSpec(name="f")) == 128  # 0.5 x 8 x 32
    small = FunctionSpec(name="f", scale=Scale(max=1, concurrency=1), background=Async(share=0.05))
    assert slots(small) == 1
    whole = FunctionSpec(name="f", scale=Scale(max=2, concurrency=10), background=Async(share=1))
    assert slots(whole) == 20


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/done",
        "https://hooks.example.com/hearth?token=abc",
        "HTTP://Example.COM",
        "http://[::1]:8080/x",
    ],
)
def test_http_and_https_callbacks_are_taken(url):
    assert callback_problem(url) is None


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ftp://example.com/x", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("javascript:alert(1)", "only http:// and https://"),
        ("example.com/hook", "only http:// and https://"),
        ("http://", "names no host"),
        ("http:///path", "names no host"),
        ("http://example.com:99999/", "is not a URL"),
        ("http://exa mple.com/", "spaces or control characters"),
        ("http://example.com/\x00", "spaces or control characters"),
        ("http://example.com/" + "a" * 3000, "over 2048 characters"),
    ],
)
def test_other_callbacks_are_refused_with_the_reason(url, said):
    problem = callback_problem(url)
    assert problem is not None and said in problem
    assert len(problem) < 200  # a long URL is not echoed whole


def test_a_failure_says_status_and_what_the_body_said():
    assert failure(500, b"boom\n  at line 3") == "500 Internal Server Error: boom at line 3"
    assert failure(503, b"") == "503 Service Unavailable"
    assert failure(599, b"odd") == "599: odd"
    long = failure(500, b"x" * 10_000)
    assert len(long) < 400 and long.endswith("...")
    assert failure(500, b"\xff\xfe") == "500 Internal Server Error: \ufffd\ufffd"


@pytest.mark.parametrize(
    "url, refused",
    [
        ("http://127.0.0.1:8081/v1/tokens", True),
        ("http://[::1]/", True),
        ("http://10.1.2.3/hook", True),
        ("http://192.168.0.10/hook", True),
        ("http://169.254.169.254/latest/meta-data", True),  # a cloud's metadata service
        ("http://0.0.0.0/", True),
        ("https://8.8.8.8/hook", False),
    ],
)
async def test_callbacks_to_loopback_and_private_addresses_are_refused(url, refused):
    from hearth.invocations.callbacks import closed_address

    said = await closed_address(url)
    assert bool(said) is refused, said
    if refused:
        assert "--callback-private" in said
