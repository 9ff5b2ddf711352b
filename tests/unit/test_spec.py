import json
import math
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearth.spec import (
    Access,
    Async,
    FunctionSpec,
    Limits,
    Scale,
    Schedule,
    SpecError,
    check_name,
    folder_name,
    parse_spec,
)
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
[async]
retries = 5
timeout = "1h"
share = 0.25
keep = "7d"
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
    assert spec.background == Async(retries=5, timeout=3600.0, share=0.25, keep=7 * 86400.0)
    assert spec.to_dict()["async"] == {
        "retries": 5,
        "timeout": 3600.0,
        "share": 0.25,
        "keep": 604800.0,
    }
    assert "background" not in spec.to_dict()  # stored and shown by its hearth.toml name
    assert FunctionSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 'Bad_Name'", "invalid function name"),
        ("colour = 'red'", "unknown key"),
        ("[scale]\nmin = 3\nmax = 2", "min <= max"),
        ("[scale]\nconcurrency = 'many'", "whole number"),
        ("[limits]\ntimeout = 'soon'", "must be a duration"),
        ("entrypoint = 'no colon'", "module:attribute"),
        ("[env]\nX = [1]", "must be a string, a finite number or true/false"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_invalid_hearth_toml_says_what_is_wrong(text, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(text, "ok")


def spec_of(section, lines):
    return parse_spec(f"[{section}]\n{lines}\n", "ok")


# section, key, (lowest accepted, value), (highest accepted, value), refused just past each edge
EDGES = [
    ("scale", "min", ("0", 0), ("1000", 1000), ["-1", "1001"]),
    ("scale", "max", ("1", 1), ("1000", 1000), ["0", "1001"]),
    ("scale", "concurrency", ("1", 1), ("10000", 10000), ["0", "10001"]),
    ("scale", "idle", ('"10ms"', 0.01), ('"7d"', 604800.0), ['"9ms"', "0.009", '"169h"', "604801"]),
    ("scale", "queue", ("0", 0), ("100000", 100000), ["-1", "100001"]),
    ("limits", "timeout", ('"100ms"', 0.1), ('"24h"', 86400.0), ['"99ms"', "0.09", '"86401s"']),
    ("limits", "body", ("0", 0), ('"1GiB"', 2**30), ["-1", str(2**30 + 1), '"1.1GiB"']),
    ("limits", "memory", ('"16MiB"', 2**24), ('"1TiB"', 2**40), [str(2**24 - 1), str(2**40 + 1)]),
    ("limits", "drain", ('"0s"', 0.0), ('"1h"', 3600.0), ["-1", '"3601s"', '"61m"']),
    ("limits", "liveness", ('"2s"', 2.0), ('"1h"', 3600.0), ['"1999ms"', "1.999", '"3601s"']),
    ("limits", "rate", ('"1/m"', 1 / 60), ('"1000000/s"', 1e6), ['"0/m"', '"1000001/s"', "100"]),
    ("async", "retries", ("0", 0), ("20", 20), ["-1", "21", "1.5"]),
    ("async", "timeout", ('"1s"', 1.0), ('"24h"', 86400.0), ['"999ms"', '"86401s"', '"25h"']),
    ("async", "share", ("0.05", 0.05), ("1", 1.0), ["0.049", "1.01", "0"]),
    ("async", "keep", ('"1m"', 60.0), ('"30d"', 2592000.0), ['"59s"', '"31d"', "0"]),
]
# [async] is `background` on FunctionSpec: `async` is a keyword in Python
ATTRIBUTE = {"async": "background"}
# min may only reach 1000 when max does too
CONTEXT = {("scale", "min"): "max = 1000\n"}


@pytest.mark.parametrize(("section", "key", "low", "high", "past"), EDGES)
def test_each_setting_accepts_its_edges(section, key, low, high, past):
    for text, value in (low, high):
        spec = spec_of(section, CONTEXT.get((section, key), "") + f"{key} = {text}")
        assert getattr(getattr(spec, ATTRIBUTE.get(section, section)), key) == value


@pytest.mark.parametrize(
    ("section", "key", "text"),
    [(section, key, text) for section, key, _, _, past in EDGES for text in past],
)
def test_each_setting_refuses_values_past_its_edges(section, key, text):
    with pytest.raises(SpecError, match=rf"^hearth\.toml \[{section}\] {key} = .*: must be a "):
        spec_of(section, CONTEXT.get((section, key), "") + f"{key} = {text}")


BAD_FOR_EVERY_KIND = [
    "nan",
    "inf",
    "-inf",
    "true",
    "false",
    "[1]",
    "[]",
    "{ a = 1 }",
    "1979-05-27",
    "-1",
]
FIELDS = [(section, key) for section, key, *_ in EDGES]


@pytest.mark.parametrize(("section", "key"), FIELDS)
@pytest.mark.parametrize("text", BAD_FOR_EVERY_KIND)
def test_nan_inf_bool_list_table_date_negative_are_refused(section, key, text):
    with pytest.raises(SpecError, match=rf"\[{section}\] {key} = "):
        spec_of(section, f"{key} = {text}")


@pytest.mark.parametrize(("section", "key"), FIELDS)
def test_a_sub_table_where_a_value_belongs_is_refused(section, key):
    with pytest.raises(SpecError, match=rf"\[{section}\] {key} = \{{ x = 1 \}}: must be"):
        parse_spec(f"[{section}.{key}]\nx = 1\n", "ok")


@pytest.mark.parametrize(
    ("section", "key", "text"),
    [
        ("scale", "min", "1.0"),
        ("scale", "max", "2.5"),
        ("scale", "concurrency", "1e3"),
        ("scale", "queue", "10.0"),
        ("limits", "body", "1.5"),
        ("limits", "body", "1e6"),
        ("limits", "memory", "268435456.0"),
    ],
)
def test_floats_are_refused_for_whole_numbers_and_sizes(section, key, text):
    with pytest.raises(SpecError, match=r"must be a (whole number|size)"):
        spec_of(section, f"{key} = {text}")


def test_rates_per_second_or_minute():
    assert spec_of("limits", 'rate = "100/s"').limits.rate == 100.0
    assert spec_of("limits", 'rate = "30/m"').limits.rate == 0.5
    assert spec_of("limits", 'rate = " 5 / s "').limits.rate == 5.0
    assert parse_spec(None, "ok").limits.rate is None
    for bad in ('"100"', '"100/h"', '"1.5/s"', '"-1/s"', '"100/S"', "100", "true"):
        with pytest.raises(SpecError, match=r"\[limits\] rate = .*: must be a rate"):
            spec_of("limits", f"rate = {bad}")


def test_async_defaults_and_refusals():
    assert parse_spec(None, "ok").background == Async(
        retries=3, timeout=900.0, share=0.5, keep=86400.0
    )
    with pytest.raises(SpecError, match=r"\[async\]: unknown key retry; known: keep, retries"):
        spec_of("async", "retry = 2")
    with pytest.raises(SpecError, match=r"hearth.toml async = 3: must be a table"):
        parse_spec("async = 3", "ok")


def test_access_public_is_true_or_false():
    assert parse_spec(None, "ok").access == Access(public=True)
    assert spec_of("access", "public = false").access == Access(public=False)
    spec = spec_of("access", "public = false")
    assert FunctionSpec.from_dict(spec.to_dict()) == spec
    for bad in ('"false"', "0", "1", "[]", "nan"):
        with pytest.raises(SpecError) as info:
            spec_of("access", f"public = {bad}")
        assert str(info.value).endswith("must be true or false (e.g. true)"), bad
    with pytest.raises(SpecError, match=r"\[access\]: unknown key private; known: public"):
        spec_of("access", "private = true")


def test_sizes_may_be_fractional_with_a_unit_and_durations_in_seconds():
    assert spec_of("limits", 'body = "1.5MB"').limits.body == 1_500_000
    assert spec_of("limits", "timeout = 2.5").limits.timeout == 2.5
    assert spec_of("scale", "idle = 60").scale.idle == 60.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[limits]\ntimeout = nan",
            'hearth.toml [limits] timeout = nan: must be a duration from 100ms to 24h (e.g. "30s")',
        ),
        (
            "[limits]\nmemory = -1",
            'hearth.toml [limits] memory = -1: must be a size from 16MiB to 1TiB (e.g. "256MiB")',
        ),
        (
            "[limits]\nbody = 1.5",
            'hearth.toml [limits] body = 1.5: must be a size from 0 to 1GiB (e.g. "10MB")',
        ),
        (
            "[scale]\nidle = [1]",
            'hearth.toml [scale] idle = [1]: must be a duration from 10ms to 7d (e.g. "5m")',
        ),
        (
            "[scale]\nmin = true",
            "hearth.toml [scale] min = true: must be a whole number from 0 to 1000 (e.g. 1)",
        ),
        (
            '[limits]\nrate = "fast"',
            'hearth.toml [limits] rate = "fast": must be a rate (requests per second or '
            'minute) from 1/m to 1000000/s (e.g. "100/s")',
        ),
        (
            "[scale]\nmin = 5\nmax = 1",
            "hearth.toml [scale] min = 5 is more than max = 1: need min <= max",
        ),
        (
            "[scale]\nmin = 9",
            "hearth.toml [scale] min = 9 is more than max = 8 (the default): need min <= max",
        ),
    ],
)
def test_exact_messages(text, message):
    with pytest.raises(SpecError) as info:
        parse_spec(text, "ok")
    assert str(info.value) == message


def test_long_bad_values_are_shortened_in_messages():
    with pytest.raises(SpecError) as info:
        spec_of("limits", f'timeout = "{"9" * 100_000}"')
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    ("section", "text"),
    [("scale", "scale = 3"), ("limits", "limits = [1]"), ("env", 'env = "A=1"')],
)
def test_sections_must_be_tables(section, text):
    with pytest.raises(SpecError, match=rf"hearth\.toml {section} = .*: must be a table"):
        parse_spec(text, "ok")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 5", 'name = 5: must be a string, e.g. "visits"'),
        ('name = "ok\\n"', "invalid function name"),
        ('name = "Bad_Name"', "invalid function name"),
        ("entrypoint = 5", "must look like"),
        ('entrypoint = "main:app\\n"', "must look like"),
        ('entrypoint = "main"', "must look like"),
        (
            "[scale]\nfoo = 1\nbar = 2",
            "unknown keys foo, bar; known: concurrency, down_rate, idle, max, min, panic, "
            "panic_window, queue, target, window",
        ),
        ("a = " + "1" * 5000, "not valid TOML: a number has too many digits"),
        ("a = " + "[" * 5000 + "]" * 5000, "not valid TOML: arrays or tables nest too deeply"),
        ("# " + "x" * (1024**2), "at most 1MiB"),
    ],
)
def test_top_level_keys_are_checked(text, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        parse_spec(text, "ok")


def test_default_name_is_checked_too():
    with pytest.raises(SpecError, match="invalid function name"):
        parse_spec(None, "Not A Name")
    with pytest.raises(SpecError, match="invalid function name"):
        check_name("ok\n")
    assert check_name("a" * 63) == "a" * 63
    with pytest.raises(SpecError):
        check_name("a" * 64)


def test_bytes_are_decoded_and_a_bom_is_ignored():
    assert parse_spec('\ufeffname = "bom"'.encode(), "ok").name == "bom"
    with pytest.raises(SpecError, match="not UTF-8"):
        parse_spec(b'name = "\xff"', "ok")


@pytest.mark.parametrize(
    ("toml", "env"),
    [
        ('_X = "a"', {"_X": "a"}),
        ("a1 = 1", {"a1": "1"}),
        ("F = 1.5", {"F": "1.5"}),
        ("B = false", {"B": "false"}),
        ('HEARTHX = ""', {"HEARTHX": ""}),
        ('hearth_lower = "x"', {"hearth_lower": "x"}),
        ('UNICODE = "h\u00e9"', {"UNICODE": "h\u00e9"}),
        (f'BIG = "{"x" * 32 * 1024}"', {"BIG": "x" * 32 * 1024}),
    ],
)
def test_env_accepts(toml, env):
    assert parse_spec(f"[env]\n{toml}\n", "ok").env == env


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('"1X" = "a"', "a variable name holds only letters, digits and '_'"),
        ('"X-Y" = "a"', "a variable name"),
        ('"X Y" = "a"', "a variable name"),
        ('"" = "a"', "a variable name"),
        ('"X=Y" = "a"', "a variable name"),
        ('"\u00c9T\u00c9" = "a"', "a variable name"),
        ('HEARTH_TOKEN = "mine"', "reserved for the platform"),
        ("X = nan", "must be a string, a finite number or true/false"),
        ("X = inf", "must be a string, a finite number or true/false"),
        ("X = [1]", "must be a string, a finite number or true/false"),
        ("X = { a = 1 }", "must be a string, a finite number or true/false"),
        ("X = 1979-05-27", "must be a string, a finite number or true/false"),
        ('X = "a\\u0000b"', "NUL character"),
        (f'X = "{"x" * (32 * 1024 + 1)}"', "at most 32KiB"),
        ("X = " + json.dumps("\u00e9" * (16 * 1024 + 1)), "the value is 32770 bytes"),
    ],
)
def test_env_refuses(toml, message):
    with pytest.raises(SpecError, match=rf"^hearth\.toml \[env\] .*{message}"):
        parse_spec(f"[env]\n{toml}\n", "ok")


def test_env_holds_at_most_1000_variables():
    many = "\n".join(f"K{i} = 1" for i in range(1000))
    assert len(parse_spec(f"[env]\n{many}\n", "ok").env) == 1000
    with pytest.raises(SpecError, match="1001 variables; at most 1000"):
        parse_spec(f"[env]\n{many}\nK1000 = 1\n", "ok")


def test_from_dict_accepts_what_earlier_versions_stored():
    stored = {
        "name": "old",
        "entrypoint": None,
        "scale": {"min": 0, "max": 8, "concurrency": 32, "idle": 0.3, "queue": 256},
        "limits": {
            "timeout": 30.0,
            "body": 10_000_000,
            "memory": 268435456,
            "drain": 30.0,
            "liveness": 10.0,
        },
        "env": {"A": "1"},
    }
    spec = FunctionSpec.from_dict(stored)
    assert spec.scale == Scale(min=0, idle=0.3, queue=256)
    assert spec.limits == Limits()
    assert spec.to_dict() == {
        **stored,
        "scale": {
            **stored["scale"],
            "target": 0.7,
            "window": 60.0,
            "panic_window": 6.0,
            "panic": 2.0,
            "down_rate": 2.0,
        },
        "limits": {
            **stored["limits"],
            "rate": None,
            "processes": 64,
            "files": 1024,
            "disk": 1024**3,
            "websockets": 1000,
            "websocket_idle": 300.0,
        },
        "access": {"public": True},
        "network": {"egress": True},
        "kv": {"enabled": False, "memory": 64 * 1024**2},
        "schedules": (),
        "async": {"retries": 3, "timeout": 900.0, "share": 0.5, "keep": 86400.0},
    }
    assert FunctionSpec.from_dict({"name": "bare"}) == FunctionSpec(name="bare")
    future = {**stored, "scale": {**stored["scale"], "burst": 3}}
    assert FunctionSpec.from_dict(future) == spec


def test_folder_name_uses_a_valid_name_from_hearth_toml(tmp_path):
    (tmp_path / "hearth.toml").write_text('name = "from-toml"\n[scale]\nmin = 1\n')
    assert folder_name(tmp_path) == "from-toml"


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe\x00\x01 binary",
        b'name = "x"\n' + b"# " + b"x" * (2 * 1024**2),
        b"name = " + b"[" * 5000,
        b"a = " + b"1" * 5000,
        b"name = 5",
        b'name = "Bad_Name"',
        b"not toml at all",
    ],
    ids=["binary", "huge", "deep", "long-number", "not-a-string", "invalid-name", "garbage"],
)
def test_folder_name_falls_back_to_the_folder_and_never_raises(tmp_path, content):
    folder = tmp_path / "My_Func"
    folder.mkdir()
    (folder / "hearth.toml").write_bytes(content)
    assert folder_name(folder) == "my-func"


def test_folder_name_with_odd_hearth_toml_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "hearth.toml").mkdir()  # a folder, not a file
    assert folder_name(tmp_path / "a") == "a"
    (tmp_path / "b").mkdir()
    os.mkfifo(tmp_path / "b" / "hearth.toml")  # reading would block for ever
    assert folder_name(tmp_path / "b") == "b"
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "hearth.toml").symlink_to(tmp_path / "c" / "hearth.toml")  # a loop
    assert folder_name(tmp_path / "c") == "c"
    assert folder_name(tmp_path / "missing") == "missing"


def toml_value(value):
    """A TOML spelling of a value from the strategy below."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)  # nan, inf, -inf
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


VALUES = st.recursive(
    st.none().map(lambda _: 0)
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["30s", "1.5MB", "100ms", "7d", "16MiB", "1e3", "-1s", "nan"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
KEYS = st.sampled_from(
    [
        "scale.min",
        "scale.max",
        "scale.concurrency",
        "scale.idle",
        "scale.queue",
        "limits.timeout",
        "limits.body",
        "limits.memory",
        "limits.drain",
        "limits.liveness",
        "limits.rate",
        "access.public",
        "env.X",
        "name",
        "entrypoint",
    ]
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.dictionaries(KEYS, VALUES, max_size=4))
def test_any_value_is_either_accepted_or_refused_with_spec_error(settings_):
    lines = []
    for dotted, value in settings_.items():
        section, _, key = dotted.rpartition(".")
        lines.append(f"{section + '.' if section else ''}{key} = {toml_value(value)}")
    text = "\n".join(sorted(lines, key=lambda line: "." in line.split("=")[0]))
    try:
        spec = parse_spec(text, "ok")
    except SpecError:
        return
    assert 0 <= spec.scale.min <= spec.scale.max <= 1000
    assert all(math.isfinite(x) for x in (spec.scale.idle, spec.limits.timeout, spec.limits.drain))
    assert all(isinstance(v, str) and "\0" not in v for v in spec.env.values())


# [[schedule]]


def schedules_of(*tables: str) -> tuple[Schedule, ...]:
    return parse_spec("".join(f"[[schedule]]\n{t}\n" for t in tables), "ok").schedules


def test_schedules_with_their_defaults():
    assert parse_spec(None, "ok").schedules == ()
    assert schedules_of(
        'cron = "*/5 * * * *"', 'every = "30s"\npath = "/tick"\nmethod = "get"'
    ) == (
        Schedule(cron="*/5 * * * *", path="/", method="POST"),
        Schedule(every=30.0, path="/tick", method="GET"),
    )
    (daily,) = schedules_of(
        'cron = " 0  3 * * *"\npath = "/tasks/cleanup?dry=0"\nmethod = "DELETE"'
    )
    assert daily == Schedule(cron="0 3 * * *", path="/tasks/cleanup?dry=0", method="DELETE")
    assert daily.when == "0 3 * * *"
    assert daily.key == "0 3 * * * DELETE /tasks/cleanup?dry=0"
    (often,) = schedules_of("every = 90")
    assert (often.every, often.when) == (90.0, "every 90s")


@pytest.mark.parametrize(("text", "seconds"), [('"1s"', 1.0), ('"7d"', 604800.0), ("1", 1.0)])
def test_every_accepts_1s_to_7d(text, seconds):
    assert schedules_of(f"every = {text}")[0].every == seconds


def test_schedules_round_trip_through_the_store():
    spec = parse_spec(
        '[[schedule]]\ncron = "*/5 * * * *"\n[[schedule]]\nevery = "1m"\npath = "/a"\n', "ok"
    )
    stored = json.loads(json.dumps(spec.to_dict()))
    assert stored["schedules"][1] == {"cron": None, "every": 60.0, "path": "/a", "method": "POST"}
    assert FunctionSpec.from_dict(stored) == spec


def test_fifty_schedules_at_most():
    tables = [f'every = "{i}m"' for i in range(1, 51)]
    assert len(schedules_of(*tables)) == 50
    with pytest.raises(SpecError, match="51 \\[\\[schedule\\]\\] tables; at most 50"):
        schedules_of(*tables, 'every = "51m"')


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        (
            ['every = "1m"', 'cron = "61 * * * *"'],
            'hearth.toml [[schedule]] #2 cron = "61 * * * *": not a valid cron expression '
            '(five fields: minute hour day month weekday, e.g. "*/5 * * * *")',
        ),
        (
            ['cron = "* * * * * *"'],
            'hearth.toml [[schedule]] #1 cron = "* * * * * *": not a valid cron expression '
            '(five fields: minute hour day month weekday, e.g. "*/5 * * * *"); it has 6 fields',
        ),
        (
            ['cron = "0 0 30 2 *"'],
            'hearth.toml [[schedule]] #1 cron = "0 0 30 2 *": never comes (no date matches it, '
            "e.g. the 30th of February)",
        ),
        (
            ["cron = 5"],
            "hearth.toml [[schedule]] #1 cron = 5: must be a string of five fields (minute "
            'hour day month weekday), e.g. "*/5 * * * *"',
        ),
        (
            ['every = "500ms"'],
            'hearth.toml [[schedule]] #1 every = "500ms": must be a duration from 1s to 7d '
            '(e.g. "30s")',
        ),
        (
            ['every = "8d"'],
            'hearth.toml [[schedule]] #1 every = "8d": must be a duration from 1s to 7d (e.g. "30s")',
        ),
        (
            ['path = "/x"'],
            'hearth.toml [[schedule]] #1: needs exactly one of cron = "*/5 * * * *" (UTC) or '
            'every = "30s"',
        ),
        (
            ['cron = "* * * * *"\nevery = "1m"'],
            'hearth.toml [[schedule]] #1: needs exactly one of cron = "*/5 * * * *" (UTC) or '
            'every = "30s" (it has both)',
        ),
        (
            ['every = "1m"\npath = "tasks"'],
            'hearth.toml [[schedule]] #1 path = "tasks": must be a path starting with "/", '
            'e.g. "/tasks/cleanup"',
        ),
        (
            ['every = "1m"\npath = "/a b"'],
            'hearth.toml [[schedule]] #1 path = "/a b": must be printable ASCII without spaces '
            "(percent-encode anything else, e.g. %20 for a space)",
        ),
        (
            ['every = "1m"\npath = "/../other/x"'],
            "hearth.toml [[schedule]] #1 path = \"/../other/x\": '.' and '..' segments are not "
            "allowed; write the path they lead to",
        ),
        (
            ['every = "1m"\nmethod = "HEAD"'],
            'hearth.toml [[schedule]] #1 method = "HEAD": must be one of GET, POST, PUT, PATCH, '
            "DELETE",
        ),
        (
            ['every = "1m"\nbody = "x"'],
            "hearth.toml [[schedule]] #1: unknown key body; known: cron, every, method, path",
        ),
        (
            ['every = "1m"\npath = "/a"', 'every = "60s"\npath = "/a"'],
            "hearth.toml [[schedule]] #2 is the same as #1 (every 1m, POST /a): remove one",
        ),
    ],
)
def test_bad_schedules_say_what_to_change(tables, message):
    with pytest.raises(SpecError) as info:
        schedules_of(*tables)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[schedule]\nevery = "1m"', "is a single table: write each schedule as [[schedule]]"),
        ("schedule = 3", "schedule = 3: must be [[schedule]] tables"),
        ("schedule = [1, 2]", "must be [[schedule]] tables"),
        ('[[schedule]]\nevery = "1m"\npath = "/%s"' % ("x" * 2048), "at most 2048 are allowed"),
        ('[[schedule]]\nevery = "1m"\npath = "/a#b"', "a fragment (#...) is never sent"),
        ('[[schedule]]\nevery = "1m"\npath = "/a/./b?c=.."', "'.' and '..' segments"),
        ('[[schedule]]\nevery = "1m"\npath = "/\\u00e9"', "printable ASCII"),
        ('[[schedule]]\ncron = "* * * * *\\n"', "must be a string of five fields"),
    ],
)
def test_schedule_tables_and_paths_are_checked(text, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(text, "ok")


def test_dots_inside_a_segment_or_the_query_are_fine():
    (schedule,) = schedules_of('every = "1m"\npath = "/a.b/..c/?next=../x"')
    assert schedule.path == "/a.b/..c/?next=../x"


SCHEDULE_VALUES = VALUES | st.sampled_from(
    ["*/5 * * * *", "61 * * * *", "* * * * * *", "@daily", "0 0 30 2 *", "/x", "/..", "GET"]
)


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(["cron", "every", "path", "method"]), SCHEDULE_VALUES),
        max_size=3,
    )
)
def test_any_schedule_is_either_accepted_or_refused_with_spec_error(tables):
    text = "".join(
        "[[schedule]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())
        for table in tables
    )
    try:
        spec = parse_spec(text, "ok")
    except SpecError:
        return
    for schedule in spec.schedules:
        assert (schedule.cron is None) != (schedule.every is None)
        assert schedule.path.startswith("/") and schedule.method in (
            "GET",
            "POST",
            "PUT",
            "PATCH",
            "DELETE",
        )
