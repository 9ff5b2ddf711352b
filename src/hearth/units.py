"""Human units in configuration: durations ("30s", "5m"), sizes ("10MB"), rates ("100/s").

Both parsers take any value and raise ValueError (never TypeError) for anything that is
not a finite, non-negative amount of sensible magnitude, so callers can validate untrusted
input (hearth.toml, flags) with a single `except ValueError`.
"""

import math
import re
import reprlib
from decimal import Decimal

# unit -> (multiplier, divisor) in seconds; the divisor keeps "100ms" exactly 0.1.
_DURATION = {
    "ms": (1, 1000),
    "": (1, 1),
    "s": (1, 1),
    "m": (60, 1),
    "h": (3600, 1),
    "d": (86400, 1),
}
_SIZE = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "t": 1024**4,
}
# Beyond these nothing in Hearth makes sense; refusing them keeps the arithmetic finite.
MAX_SECONDS = 3650 * 86400.0
MAX_BYTES = 1024**5
_NUMBER_UNIT = re.compile(r"\s*(\d{1,20}(?:\.\d{1,20})?)\s*([a-zA-Z]{0,3})\s*", re.ASCII)
_DURATION_HINT = "use e.g. 30s, 250ms, 5m, 1h, 2d"
_SIZE_HINT = "use e.g. 512KB, 1.5MB, 256MiB, 1GB"
_RATE = {"s": 1, "m": 60}  # unit -> seconds
_RATE_SYNTAX = re.compile(r"\s*(\d{1,9})\s*/\s*([a-z])\s*", re.ASCII)
_RATE_HINT = 'use e.g. "100/s" or "30/m" (a whole number of requests per second or minute)'


def parse_duration(value: object) -> float:
    """Seconds from `30`, `1.5`, `"30s"`, `"250ms"`, `"5m"`, `"1h"` or `"2d"`."""
    if isinstance(value, str):
        match = _NUMBER_UNIT.fullmatch(value)
        if not match or match.group(2).lower() not in _DURATION:
            raise ValueError(f"not a duration: {_show(value)} ({_DURATION_HINT})")
        multiplier, divisor = _DURATION[match.group(2).lower()]
        seconds = float(match.group(1)) * multiplier / divisor
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"not a duration: {_show(value)} ({_DURATION_HINT})")
    elif isinstance(value, int) and abs(value) > MAX_SECONDS:
        seconds = math.inf if value > 0 else -math.inf  # float() of it would overflow
    else:
        seconds = float(value)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(
            f"not a duration: {_show(value)} (must be a finite number of seconds, 0 or more)"
        )
    if seconds > MAX_SECONDS:
        raise ValueError(f"not a duration: {_show(value)} (at most 3650d)")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from `1024`, `"10MB"`, `"1.5MB"`, `"256MiB"` or `"1G"` (never a bare float)."""
    if isinstance(value, str):
        match = _NUMBER_UNIT.fullmatch(value)
        if not match or match.group(2).lower() not in _SIZE:
            raise ValueError(f"not a size: {_show(value)} ({_SIZE_HINT})")
        number, unit = match.group(1), match.group(2).lower()
        if "." in number and _SIZE[unit] == 1:
            raise ValueError(f"not a size: {_show(value)} (a fraction of a byte; {_SIZE_HINT})")
        size = int(Decimal(number) * _SIZE[unit])
    elif isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"not a size: {_show(value)} (a whole number of bytes, or a string with a unit; "
            f"{_SIZE_HINT})"
        )
    else:
        size = value
    if size < 0:
        raise ValueError(f"not a size: {_show(value)} (must be a number of bytes, 0 or more)")
    if size > MAX_BYTES:
        raise ValueError(f"not a size: {_show(value)} (at most 1PiB)")
    return size


def parse_rate(value: object) -> float:
    """Requests per second from `"100/s"` or `"30/m"`."""
    match = _RATE_SYNTAX.fullmatch(value) if isinstance(value, str) else None
    if match is None or match.group(2) not in _RATE:
        raise ValueError(f"not a rate: {_show(value)} ({_RATE_HINT})")
    return int(match.group(1)) / _RATE[match.group(2)]


def format_rate(per_second: float) -> str:
    """The spelling that `parse_rate` reads back: 100.0 -> "100/s", 0.5 -> "30/m"."""
    if per_second == int(per_second):
        return f"{int(per_second)}/s"
    return f"{round(per_second * 60)}/m"


def format_duration(seconds: float) -> str:
    """The shortest exact spelling that `parse_duration` reads back: 300.0 -> "5m"."""
    millis = round(seconds * 1000)
    if not math.isfinite(seconds) or millis / 1000 != seconds:
        return f"{seconds:g}s"
    if millis == 0:
        return "0s"
    for unit, (multiplier, divisor) in sorted(_DURATION.items(), key=lambda u: -u[1][0] / u[1][1]):
        step = multiplier * 1000 // divisor
        if unit and millis % step == 0:
            return f"{millis // step}{unit}"
    return f"{millis}ms"


def format_size(size: int) -> str:
    """The shortest exact spelling that `parse_size` reads back: 10_000_000 -> "10MB"."""
    for unit in ("TiB", "TB", "GiB", "GB", "MiB", "MB", "KiB", "KB"):
        step = _SIZE[unit.lower()]
        if size >= step and size % step == 0:
            return f"{size // step}{unit}"
    return str(size)


def _show(value: object) -> str:
    """A short, printable rendering of a value that may be huge or hostile."""
    if isinstance(value, int) and value.bit_length() > 128:
        return "a number of more than 38 digits"  # repr() refuses over 4300 digits
    return reprlib.repr(value)
