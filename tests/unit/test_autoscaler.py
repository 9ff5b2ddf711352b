from hearth.autoscaler import Decision, InstanceLoad, Observation, backoff, decide
from hearth.spec import Scale

SCALE = Scale(min=1, max=3, concurrency=2, idle=10.0)


def ready(*loads):
    return tuple(
        InstanceLoad(f"i{n}", in_flight, idle) for n, (in_flight, idle) in enumerate(loads)
    )


def test_starts_up_to_min():
    assert decide(Observation((), 0, 0), SCALE) == Decision(start=1)
    assert decide(Observation((), 1, 0), SCALE) == Decision()
    assert decide(Observation((), 0, 0), Scale(min=0)) == Decision()


def test_queued_requests_start_an_instance():
    obs = Observation(ready((2, 0.0)), starting=0, queued=1)
    assert decide(obs, SCALE) == Decision(start=1)


def test_queue_absorbed_by_starting_instances_starts_nothing_more():
    obs = Observation(ready((2, 0.0)), starting=1, queued=2)
    assert decide(obs, SCALE) == Decision()


def test_large_queue_starts_several_but_never_past_max():
    obs = Observation(ready((2, 0.0)), starting=0, queued=100)
    assert decide(obs, SCALE) == Decision(start=2)
    full = Observation(ready((2, 0.0), (2, 0.0), (2, 0.0)), starting=0, queued=100)
    assert decide(full, SCALE) == Decision()


def test_cold_start_from_zero():
    assert decide(Observation((), 0, queued=1), Scale(min=0, max=2)) == Decision(start=1)


def test_reclaims_longest_idle_above_min():
    obs = Observation(ready((0, 11.0), (0, 30.0), (1, 0.0)), starting=0, queued=0)
    assert decide(obs, SCALE) == Decision(stop=("i1", "i0"))


def test_keeps_min_and_busy_instances():
    assert decide(Observation(ready((0, 99.0)), 0, 0), SCALE) == Decision()
    obs = Observation(ready((0, 5.0), (0, 99.0)), 0, 0)
    assert decide(obs, SCALE) == Decision(stop=("i1",))


def test_scale_to_zero():
    obs = Observation(ready((0, 11.0)), 0, 0)
    assert decide(obs, Scale(min=0, idle=10.0)) == Decision(stop=("i0",))


def test_backoff_grows_then_caps():
    assert backoff(0) == 0.0
    delays = [backoff(n) for n in range(1, 10)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert delays == sorted(delays)
    assert max(delays) == 30.0
