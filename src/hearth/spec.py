"""A function's settings: `hearth.toml` parsed and validated once into typed values."""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hearth.units import parse_duration, parse_size

NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
ENTRYPOINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class SpecError(ValueError):
    """hearth.toml (or a function name) is not valid; the message says what to change."""


@dataclass(frozen=True)
class Scale:
    min: int = 1
    max: int = 8
    concurrency: int = 32
    idle: float = 300.0
    queue: int = 256


@dataclass(frozen=True)
class Limits:
    timeout: float = 30.0
    body: int = 10 * 1000**2
    memory: int = 256 * 1024**2
    drain: float = 30.0
    liveness: float = 10.0


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    entrypoint: str | None = None
    scale: Scale = field(default_factory=Scale)
    limits: Limits = field(default_factory=Limits)
    env: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FunctionSpec:
        """Rebuild a spec stored by `to_dict` (already validated)."""
        return cls(
            name=data["name"],
            entrypoint=data.get("entrypoint"),
            scale=Scale(**data.get("scale", {})),
            limits=Limits(**data.get("limits", {})),
            env=dict(data.get("env", {})),
        )


def folder_name(folder: Path) -> str:
    """The function name for a folder: `name` in its hearth.toml, else the folder's name."""
    toml = folder / "hearth.toml"
    if toml.is_file():
        try:
            name = tomllib.loads(toml.read_text()).get("name")
        except (tomllib.TOMLDecodeError, OSError):
            name = None
        if isinstance(name, str):
            return name
    return folder.resolve().name.lower().replace("_", "-")


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise SpecError(
            f"invalid function name {name!r}: use lowercase letters, digits and '-', "
            "starting with a letter (at most 63 characters)"
        )
    return name


def parse_spec(text: str | None, default_name: str) -> FunctionSpec:
    """Validate the text of hearth.toml (None when the folder has none)."""
    try:
        data = tomllib.loads(text) if text else {}
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"hearth.toml is not valid TOML: {exc}") from exc
    known = {"name", "entrypoint", "scale", "limits", "env"}
    unknown = set(data) - known
    if unknown:
        raise SpecError(f"hearth.toml: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    name = check_name(str(data.get("name", default_name)))
    entrypoint = data.get("entrypoint")
    if entrypoint is not None and not (
        isinstance(entrypoint, str) and ENTRYPOINT.match(entrypoint)
    ):
        raise SpecError(f"hearth.toml: entrypoint {entrypoint!r} must look like 'module:attribute'")
    scale = _scale(_table(data, "scale"))
    limits = _limits(_table(data, "limits"))
    env = _table(data, "env")
    for key, value in env.items():
        if not isinstance(value, str | int | float | bool):
            raise SpecError(f"hearth.toml: [env] {key} must be a string or number")
    env_str = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}
    return FunctionSpec(name=name, entrypoint=entrypoint, scale=scale, limits=limits, env=env_str)


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"hearth.toml: [{key}] must be a table")
    return value


def _scale(table: dict[str, Any]) -> Scale:
    _only(table, "scale", {"min", "max", "concurrency", "idle", "queue"})
    d = Scale()
    try:
        scale = Scale(
            min=_int(table, "min", d.min, "scale"),
            max=_int(table, "max", d.max, "scale"),
            concurrency=_int(table, "concurrency", d.concurrency, "scale"),
            idle=parse_duration(table.get("idle", d.idle)),
            queue=_int(table, "queue", d.queue, "scale"),
        )
    except ValueError as exc:
        raise SpecError(f"hearth.toml [scale]: {exc}") from exc
    if scale.min < 0 or scale.max < 1 or scale.min > scale.max:
        raise SpecError("hearth.toml [scale]: need 0 <= min <= max and max >= 1")
    if scale.concurrency < 1 or scale.queue < 0:
        raise SpecError("hearth.toml [scale]: concurrency must be >= 1 and queue >= 0")
    return scale


def _limits(table: dict[str, Any]) -> Limits:
    _only(table, "limits", {"timeout", "body", "memory", "drain", "liveness"})
    d = Limits()
    try:
        limits = Limits(
            timeout=parse_duration(table.get("timeout", d.timeout)),
            body=parse_size(table.get("body", d.body)),
            memory=parse_size(table.get("memory", d.memory)),
            drain=parse_duration(table.get("drain", d.drain)),
            liveness=parse_duration(table.get("liveness", d.liveness)),
        )
    except ValueError as exc:
        raise SpecError(f"hearth.toml [limits]: {exc}") from exc
    if limits.timeout <= 0 or limits.body < 0 or limits.drain < 0:
        raise SpecError("hearth.toml [limits]: timeout must be > 0, body and drain >= 0")
    if limits.liveness < 2:
        raise SpecError("hearth.toml [limits]: liveness must be at least 2s (heartbeats are 1s)")
    return limits


def _only(table: dict[str, Any], name: str, keys: set[str]) -> None:
    unknown = set(table) - keys
    if unknown:
        raise SpecError(f"hearth.toml [{name}]: unknown key(s) {sorted(unknown)}")


def _int(table: dict[str, Any], key: str, default: int, section: str) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"hearth.toml [{section}]: {key} must be a whole number")
    return value
