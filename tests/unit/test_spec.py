import pytest

from hearth.spec import FunctionSpec, SpecError, parse_spec
from hearth.units import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("250ms", 0.25), ("5m", 300.0), ("1h", 3600.0), (12, 12.0), ("1.5s", 1.5)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10MB", 10_000_000),
        ("256MiB", 256 * 2**20),
        ("1G", 2**30),
        (1024, 1024),
        ("512kb", 512_000),
    ],
)
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["fast", "10 parsecs", "", True])
def test_bad_duration_names_the_value(bad):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


def test_defaults_without_hearth_toml():
    spec = parse_spec(None, "hello")
    assert spec == FunctionSpec(name="hello")
    assert spec.scale.min == 1
    assert spec.limits.timeout == 30.0


def test_full_hearth_toml():
    spec = parse_spec(
        """
name = "visits"
entrypoint = "main:app"
[scale]
min = 0
max = 4
concurrency = 16
idle = "1m"
[limits]
timeout = "5s"
body = "1MB"
memory = "128MB"
[env]
GREETING = "hi"
DEBUG = true
PORT = 5
""",
        "folder",
    )
    assert spec.name == "visits"
    assert spec.entrypoint == "main:app"
    assert (spec.scale.min, spec.scale.max, spec.scale.concurrency) == (0, 4, 16)
    assert spec.scale.idle == 60.0
    assert spec.limits.timeout == 5.0
    assert spec.limits.body == 1_000_000
    assert spec.env == {"GREETING": "hi", "DEBUG": "true", "PORT": "5"}
    assert FunctionSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 'Bad_Name'", "invalid function name"),
        ("colour = 'red'", "unknown key"),
        ("[scale]\nmin = 3\nmax = 2", "min <= max"),
        ("[scale]\nconcurrency = 'many'", "whole number"),
        ("[limits]\ntimeout = 'soon'", "not a duration"),
        ("entrypoint = 'no colon'", "module:attribute"),
        ("[env]\nX = [1]", "string or number"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_invalid_hearth_toml_says_what_is_wrong(text, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(text, "ok")
