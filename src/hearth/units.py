"""Human units in configuration: durations ("30s", "5m") and sizes ("10MB")."""

import re

_DURATION = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}
_SIZE = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
}
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_duration(value: str | int | float) -> float:
    """Seconds from `30`, `"30s"`, `"250ms"`, `"5m"` or `"1h"`."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = _NUMBER_UNIT.match(value)
    if not match or match.group(2).lower() not in _DURATION:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 250ms, 5m, 1h)")
    return float(match.group(1)) * _DURATION[match.group(2).lower()]


def parse_size(value: str | int) -> int:
    """Bytes from `1024`, `"10MB"`, `"256MiB"` or `"1G"`."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        return value
    match = _NUMBER_UNIT.match(value)
    if not match or match.group(2).lower() not in _SIZE:
        raise ValueError(f"not a size: {value!r} (use e.g. 512KB, 10MB, 256MiB, 1GB)")
    return int(float(match.group(1)) * _SIZE[match.group(2).lower()])
