"""Private functions and rate limits on raw bytes: the proxy's one call into access."""

from hearth.gateway.access import key_hash
from tests.gateway.fakes import OK, error_body


def private(setup, *keys):
    access = setup.gateway.routes["hello"].access
    access.configure(public=False, rate=None)
    access.keys = frozenset(key_hash(k) for k in keys)
    return access


async def test_a_private_function_without_a_key_is_401_and_the_instance_sees_nothing(setup):
    private(setup, "k1")
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = error_body(setup.transport.take())
    assert head.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"\r\nwww-authenticate: Bearer" in head
    assert body["function"] == "hello"
    assert "private" in body["error"]
    assert setup.upstream_got() == b""
    assert not setup.transport.closed  # keep-alive goes on
    assert setup.backend.requests == 0


async def test_with_its_key_the_request_goes_through_without_the_header(setup):
    private(setup, "k1", "k2")
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k2\r\nA: b\r\n\r\n")
    head = setup.upstream_got()
    assert head.startswith(b"GET /fn/hello/ HTTP/1.1\r\n")
    assert b"k2" not in head
    assert b"uthorization" not in head
    assert b"\r\nA: b\r\n" in head
    setup.reply(OK)
    assert setup.transport.take() == OK


async def test_a_refused_request_with_a_body_keeps_the_connection(setup):
    private(setup, "k1")
    setup.send(
        b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n"
        b"content-length: 5\r\n\r\nhello"
        b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k1\r\n\r\n"
    )
    head, body = error_body(setup.transport.take())
    assert head.startswith(b"HTTP/1.1 401 ")
    assert b'www-authenticate: Bearer error="invalid_token"' in head
    assert "does not open" in body["error"]
    assert setup.upstream_got().startswith(b"GET /fn/hello/ ")
    setup.reply(OK)
    assert setup.transport.take() == OK


async def test_over_the_rate_is_429_with_retry_after(setup):
    setup.gateway.routes["hello"].access.configure(public=True, rate=1 / 60)
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert setup.upstream_got().startswith(b"GET /fn/hello/ ")
    setup.reply(OK)
    assert setup.transport.take() == OK
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer app\r\n\r\n")
    head, body = error_body(setup.transport.take())
    assert head.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    retry = int(head.split(b"retry-after: ")[1].split(b"\r\n")[0])
    assert 59 <= retry <= 60
    assert "over its rate of 1/m" in body["error"]
    assert setup.upstream_got() == b""


async def test_a_public_function_forwards_the_apps_own_authorization(setup):
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer app\r\n\r\n")
    assert b"Authorization: Bearer app\r\n" in setup.upstream_got()


async def test_an_unknown_function_is_still_404(setup):
    private(setup, "k1")
    setup.send(b"GET /fn/nope/ HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _ = error_body(setup.transport.take())
    assert head.startswith(b"HTTP/1.1 404 ")


async def test_the_daemons_own_requests_pass_with_its_secret_and_only_with_it(setup):
    private(setup, "k1")
    secret = setup.gateway.internal
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Hearth-Internal: %b\r\n\r\n" % secret)
    head = setup.upstream_got()
    assert head.startswith(b"GET /fn/hello/ ") and secret not in head  # never forwarded
    setup.reply(OK)
    assert setup.transport.take() == OK
    setup.send(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\nX-Hearth-Internal: guess\r\n\r\n")
    head, _ = error_body(setup.transport.take())
    assert head.startswith(b"HTTP/1.1 401 ")
