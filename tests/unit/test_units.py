import decimal
import math

import pytest

from hearth.units import (
    MAX_BYTES,
    MAX_SECONDS,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)

ODD = [
    None,
    True,
    False,
    [],
    [30],
    {},
    {"s": 30},
    b"30s",
    object(),
    1j,
    decimal.Decimal("1"),
    math.nan,
    math.inf,
    -math.inf,
    -1,
    10**400,
    -(10**400),
    "",
    " ",
    "nan",
    "inf",
    "-1s",
    "1e3s",
    "\u0663s",  # an Arabic-Indic digit: not a number we accept
    "30 parsecs",
    "30s30s",
    "1" * 10_000,
]


@pytest.mark.parametrize("value", ODD, ids=repr)
def test_parse_duration_refuses_odd_values_with_value_error(value):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [*ODD, 1.5, 2.0, "1.5", "1.5b"], ids=repr)
def test_parse_size_refuses_odd_values_with_value_error(value):
    with pytest.raises(ValueError, match="not a size"):
        parse_size(value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (0.25, 0.25),
        ("100ms", 0.1),
        (" 2 s ", 2.0),
        ("1.5m", 90.0),
        ("7d", 604800.0),
        ("3650d", MAX_SECONDS),
        (int(MAX_SECONDS), MAX_SECONDS),
    ],
)
def test_parse_duration_accepts(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["3651d", MAX_SECONDS + 1, int(MAX_SECONDS) + 1])
def test_parse_duration_refuses_absurd_magnitudes(value):
    with pytest.raises(ValueError, match="at most 3650d"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (0, 0),
        ("0", 0),
        ("1.5MB", 1_500_000),
        ("16MiB", 16 * 2**20),
        ("1TiB", 2**40),
        ("2t", 2 * 2**40),
        (MAX_BYTES, MAX_BYTES),
    ],
)
def test_parse_size_accepts(value, size):
    assert parse_size(value) == size


@pytest.mark.parametrize("value", [MAX_BYTES + 1, "1025TiB", "99999999999999999999TB"])
def test_parse_size_refuses_absurd_magnitudes(value):
    with pytest.raises(ValueError, match="at most 1PiB"):
        parse_size(value)


def test_messages_stay_short_for_huge_input():
    with pytest.raises(ValueError) as info:
        parse_duration("9" * 100_000)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    "seconds", [0.0, 0.1, 0.25, 1.0, 1.5, 30.0, 90.0, 300.0, 86400.0, 604800.0]
)
def test_format_duration_reads_back(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0"), (1500, "1500"), (10_000_000, "10MB"), (256 * 2**20, "256MiB"), (2**40, "1TiB")],
)
def test_format_size_reads_back(size, text):
    assert format_size(size) == text
    assert parse_size(text) == size
