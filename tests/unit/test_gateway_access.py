"""The gateway's access decision: keys and the token bucket, on a fake clock."""

import pytest

from hearth.gateway.access import (
    Access,
    TokenBucket,
    check,
    key_hash,
    without_authorization,
)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# token bucket


def test_a_full_bucket_lets_one_second_of_requests_through_at_once():
    bucket = TokenBucket(10, now=0.0)
    assert [bucket.take(0.0) for _ in range(10)] == [0.0] * 10
    assert bucket.take(0.0) == pytest.approx(0.1)


def test_tokens_come_back_at_the_rate():
    bucket = TokenBucket(10, now=0.0)
    for _ in range(10):
        bucket.take(0.0)
    assert bucket.take(0.05) == pytest.approx(0.05)  # half a token so far
    assert bucket.take(0.1) == 0.0
    assert bucket.take(0.1) > 0


def test_the_bucket_never_holds_more_than_the_burst():
    bucket = TokenBucket(5, now=0.0)
    granted = sum(bucket.take(3600.0) == 0.0 for _ in range(100))
    assert granted == 5


def test_a_sustained_rate_is_held_to_the_limit():
    bucket = TokenBucket(100, now=0.0)
    # 1000 requests a second for 10 seconds: the burst, then 100 a second.
    granted = sum(bucket.take(i / 1000) == 0.0 for i in range(10_000))
    assert granted == pytest.approx(100 + 100 * 10, abs=2)


def test_per_minute_rates_have_a_burst_of_one():
    bucket = TokenBucket(2 / 60, now=0.0)  # "2/m"
    assert bucket.burst == 1.0
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(30.0)
    assert bucket.take(29.0) == pytest.approx(1.0)
    assert bucket.take(30.0) == 0.0


def test_a_clock_that_goes_back_adds_nothing():
    bucket = TokenBucket(1, now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) == pytest.approx(1.0)
    assert bucket.take(10.5) == pytest.approx(0.5)


# check: keys


KEYS = frozenset({key_hash("good-key")})


def refuse(authorization, public=False, bucket=None, now=0.0):
    return check("fn", public, KEYS, bucket, authorization, now)


def test_a_public_function_without_a_rate_lets_everything_through():
    assert refuse([], public=True) is None
    assert refuse([b"Bearer nonsense"], public=True) is None


def test_a_private_function_needs_one_of_its_keys():
    assert refuse([b"Bearer good-key"]) is None
    assert refuse([b"bearer   good-key "]) is None  # the scheme is case-insensitive


@pytest.mark.parametrize(
    "authorization",
    [
        [],
        [b""],
        [b"Bearer"],
        [b"Bearer "],
        [b"Basic Z29vZC1rZXk="],
        [b"good-key"],
        [b"Bearer good-key extra"],
        [b"Bearer good-key", b"Bearer good-key"],
    ],
)
def test_no_usable_key_is_401_with_a_challenge(authorization):
    status, message, headers = refuse(authorization)
    assert status == 401
    assert "function 'fn' is private" in message
    assert "hearth keys create fn" in message
    assert ("www-authenticate", "Bearer") in headers


@pytest.mark.parametrize("key", [b"bad-key", b"good-key2", b"GOOD-KEY", b"good-ke"])
def test_a_wrong_key_is_401_saying_so(key):
    status, message, headers = refuse([b"Bearer " + key])
    assert status == 401
    assert "that key does not open function 'fn'" in message
    assert headers == (("www-authenticate", 'Bearer error="invalid_token"'),)


def test_keys_are_compared_by_their_hash():
    assert key_hash("good-key") == key_hash(b"good-key")
    assert len(key_hash("x")) == 64
    assert "good-key" not in key_hash("good-key")


# check: rate


def test_over_the_rate_is_429_with_retry_after_rounded_up():
    bucket = TokenBucket(2 / 60, now=0.0)  # one request, then one every 30 s
    assert refuse([], public=True, bucket=bucket) is None
    status, message, headers = refuse([], public=True, bucket=bucket, now=0.5)
    assert status == 429
    assert message == "function 'fn' is over its rate of 2/m; retry in 30s"
    assert headers == (("retry-after", "30"),)


def test_retry_after_is_at_least_one_second():
    bucket = TokenBucket(1000, now=0.0)
    for _ in range(1000):
        assert refuse([], public=True, bucket=bucket) is None
    assert refuse([], public=True, bucket=bucket)[2] == (("retry-after", "1"),)


def test_requests_without_a_key_do_not_use_up_the_rate():
    bucket = TokenBucket(1, now=0.0)
    for _ in range(5):
        assert refuse([], bucket=bucket)[0] == 401
    assert refuse([b"Bearer good-key"], bucket=bucket) is None
    assert refuse([b"Bearer good-key"], bucket=bucket)[0] == 429


# Access, as the proxy uses it


class FakeExchange:
    def __init__(self, head: bytes) -> None:
        self.head = head


HEAD = (
    b"GET /fn/fn/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good-key\r\n"
    b"authorization: Bearer other\r\nX-Authorization: keep\r\n\r\n"
)


def test_the_key_header_is_taken_out_of_a_private_functions_request():
    assert without_authorization(HEAD) == (
        b"GET /fn/fn/ HTTP/1.1\r\nHost: x\r\nX-Authorization: keep\r\n\r\n"
    )


def test_access_admits_and_strips_for_a_private_function():
    access = Access("fn", clock=Clock())
    access.configure(public=False, rate=None)
    access.keys = KEYS
    exchange = FakeExchange(b"GET / HTTP/1.1\r\nAuthorization: Bearer good-key\r\n\r\n")
    assert access.admit(exchange, [(b"Authorization", b"Bearer good-key")]) is None
    assert exchange.head == b"GET / HTTP/1.1\r\n\r\n"
    access.keys = frozenset()  # revoked
    assert access.admit(exchange, [(b"Authorization", b"Bearer good-key")])[0] == 401


def test_a_public_function_keeps_its_authorization_header():
    access = Access("fn", clock=Clock())
    access.configure(public=True, rate=100.0)
    exchange = FakeExchange(HEAD)
    assert access.admit(exchange, [(b"Authorization", b"Bearer mine")]) is None
    assert exchange.head == HEAD


def test_reconfiguring_keeps_the_bucket_while_the_rate_stays():
    clock = Clock()
    access = Access("fn", clock=clock)
    access.configure(public=True, rate=1.0)
    exchange = FakeExchange(HEAD)
    assert access.admit(exchange, []) is None
    access.configure(public=True, rate=1.0)  # a deploy with the same rate
    assert access.admit(exchange, [])[0] == 429
    access.configure(public=True, rate=2.0)  # a new rate starts full
    assert access.admit(exchange, []) is None
    access.configure(public=True, rate=None)
    assert access.bucket is None
    assert "public" in repr(access)
