from hearth.gateway import Backend, Pool, RouteLimits, pick
from hearth.gateway.routes import choose, route_name


def backend(name, in_flight, concurrency=4):
    b = Backend(name, f"/tmp/{name}.sock", concurrency)
    b.in_flight = in_flight
    return b


def test_pick_least_in_flight():
    backends = [backend("a", 3), backend("b", 1), backend("c", 2)]
    assert pick(backends).id == "b"


def test_pick_skips_full_backends():
    assert pick([backend("a", 4), backend("b", 4)]) is None
    assert pick([backend("a", 4), backend("b", 3)]).id == "b"
    assert pick([]) is None


def test_release_tracks_idle_and_wakes_drain():
    b = backend("a", 0)
    b.acquire()
    b.acquire()
    assert (b.in_flight, b.requests) == (2, 2)
    b.release()
    b.release()
    assert b.in_flight == 0


def test_route_by_host_and_path():
    domain = b"localhost"
    assert route_name(b"hello.localhost:8080", b"/", domain) == ("hello", False)
    assert route_name(b"hello.localhost", b"/x", domain) == ("hello", False)
    assert route_name(b"127.0.0.1:8080", b"/fn/hello/a/b", domain) == ("hello", True)
    assert route_name(b"127.0.0.1:8080", b"/fn/hello", domain) == ("hello", True)
    assert route_name(b"127.0.0.1:8080", b"/fn/hello?x=1", domain) == ("hello", True)
    assert route_name(b"localhost:8080", b"/", domain) == (None, False)
    assert route_name(b"", b"/other", domain) == (None, False)
    assert route_name(b"a.example.com", b"/", b"example.com") == ("a", False)


def test_choose_by_weight():
    a = Pool("f", 1, RouteLimits(), weight=90)
    b = Pool("f", 2, RouteLimits(), weight=10)
    assert choose([a, b], 0.0) is a
    assert choose([a, b], 0.899) is a
    assert choose([a, b], 0.9) is b
    assert choose([a, b], 0.999) is b
    assert choose([a], 0.5) is a


async def test_drain_waits_for_in_flight_requests():
    import asyncio

    b = backend("a", 0)
    b.acquire()
    b.acquire()
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, b.release)
    loop.call_later(0.02, b.release)
    assert await b.wait_idle(5.0) is True
    assert b.in_flight == 0


async def test_drain_gives_up_at_its_deadline():
    b = backend("a", 0)
    b.acquire()
    assert await b.wait_idle(0.05) is False
    assert b.in_flight == 1


async def test_withdrawn_backend_gets_no_new_requests():
    pool = Pool("f", 1, RouteLimits())
    a, b = backend("a", 0), backend("b", 3)
    pool.add(a)
    pool.add(b)
    pool.withdraw(a)
    assert not a.routable
    assert pick(pool.backends) is b
