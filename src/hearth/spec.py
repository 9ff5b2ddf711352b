"""A function's settings: `hearth.toml` parsed and validated once into typed values.

Each setting is declared once, on its dataclass field: the default, and in the field's
metadata a `Rule` (kind and allowed range). One generic parser reads every section from
those declarations, so a new setting needs one line and is validated like the others.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from hearth.units import (
    format_duration,
    format_rate,
    format_size,
    parse_duration,
    parse_rate,
    parse_size,
)

NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
ENTRYPOINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ENV_RESERVED_PREFIX = "HEARTH_"
MAX_ENV_KEYS = 1000
MAX_ENV_VALUE = 32 * 1024
MAX_TOML = 1024**2
NAME_HINT = "use lowercase letters, digits and '-', starting with a letter (at most 63 characters)"
_TOP_KEYS = (
    "name",
    "entrypoint",
    "scale",
    "limits",
    "access",
    "network",
    "kv",
    "async",
    "env",
    "schedule",
)
_RULE = "hearth.rule"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_SCHEDULES = 50
MAX_SCHEDULE_PATH = 2048
MAX_CRON = 200
# A request target as it goes on the request line: printable ASCII, no space.
SCHEDULE_PATH = re.compile(r"/[\x21-\x7e]*")
CRON_TEXT = re.compile(r"[\x20-\x7e]+")
_SHOWN = 40

Kind = Literal["int", "number", "duration", "size", "rate", "bool"]


class SpecError(ValueError):
    """hearth.toml (or a function name) is not valid; the message says what to change."""


@dataclass(frozen=True)
class Rule:
    """How one setting is read from hearth.toml, and the values it allows."""

    kind: Kind
    low: float
    high: float
    low_text: str
    high_text: str

    def read(self, raw: object) -> int | float:
        """The value in base units (seconds, bytes, per second); ValueError if not allowed."""
        value: int | float
        if self.kind == "bool":
            if not isinstance(raw, bool):
                raise ValueError("not true or false")
            return raw
        if self.kind == "int":
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise ValueError("not a whole number")
            value = raw
        elif self.kind == "number":
            if isinstance(raw, bool) or not isinstance(raw, int | float) or math.isnan(raw):
                raise ValueError("not a number")
            value = float(raw)
        elif self.kind == "duration":
            value = parse_duration(raw)
        elif self.kind == "rate":
            value = parse_rate(raw)
        else:
            value = parse_size(raw)
        if not self.low <= value <= self.high:
            raise ValueError("out of range")
        return value

    def describe(self, default: object) -> str:
        if self.kind == "bool":
            return f"must be true or false (e.g. {_show(default)})"
        if self.kind == "int":
            noun, example = "a whole number", str(default)
        elif self.kind == "number":
            noun, example = "a number", str(default)
        elif self.kind == "duration":
            assert isinstance(default, int | float)
            noun, example = "a duration", f'"{format_duration(default)}"'
        elif self.kind == "rate":
            shown = format_rate(default) if isinstance(default, int | float) else "100/s"
            noun, example = "a rate (requests per second or minute)", f'"{shown}"'
        else:
            assert isinstance(default, int)
            noun, example = "a size", f'"{format_size(default)}"'
        return f"must be {noun} from {self.low_text} to {self.high_text} (e.g. {example})"


def _whole(low: int, high: int) -> dict[str, Rule]:
    return {_RULE: Rule("int", low, high, str(low), str(high))}


def _number(low: float, high: float) -> dict[str, Rule]:
    return {_RULE: Rule("number", low, high, f"{low:g}", f"{high:g}")}


def _duration(low: str, high: str) -> dict[str, Rule]:
    return {_RULE: Rule("duration", parse_duration(low), parse_duration(high), low, high)}


def _size(low: str, high: str) -> dict[str, Rule]:
    return {_RULE: Rule("size", parse_size(low), parse_size(high), low, high)}


def _rate(low: str, high: str) -> dict[str, Rule]:
    return {_RULE: Rule("rate", parse_rate(low), parse_rate(high), low, high)}


def _flag() -> dict[str, Rule]:
    return {_RULE: Rule("bool", 0, 1, "false", "true")}


@dataclass(frozen=True)
class Scale:
    min: int = field(default=1, metadata=_whole(0, 1000))
    max: int = field(default=8, metadata=_whole(1, 1000))
    concurrency: int = field(default=32, metadata=_whole(1, 10_000))
    # No request for this long: down to `min` (to zero with min = 0), whatever the window.
    idle: float = field(default=300.0, metadata=_duration("10ms", "7d"))
    # Requests waiting for a free instance, beyond which 503: a burst from zero waits here.
    queue: int = field(default=1000, metadata=_whole(0, 100_000))
    # The autoscaler aims at `concurrency x target` requests in flight per instance...
    target: float = field(default=0.7, metadata=_number(0.05, 1.0))
    # ...averaged over `window` (the stable window: scaling down follows it)...
    window: float = field(default=60.0, metadata=_duration("1s", "1h"))
    # ...or, at `panic` times the capacity, over `panic_window`: up at once, never down.
    panic_window: float = field(default=6.0, metadata=_duration("1s", "1h"))
    panic: float = field(default=2.0, metadata=_number(1.1, 100.0))
    # Scaling down removes at most this share of the instances per decision (2 = half).
    down_rate: float = field(default=2.0, metadata=_number(1.0, 1000.0))


@dataclass(frozen=True)
class Limits:
    timeout: float = field(default=30.0, metadata=_duration("100ms", "24h"))
    body: int = field(default=10 * 1000**2, metadata=_size("0", "1GiB"))
    memory: int = field(default=256 * 1024**2, metadata=_size("16MiB", "1TiB"))
    drain: float = field(default=30.0, metadata=_duration("0s", "1h"))
    # Instances beat every quarter of it (at most 2.5 s); below 2s one late beat would kill.
    liveness: float = field(default=10.0, metadata=_duration("2s", "1h"))
    # Processes (and threads) beyond what the instances themselves run: a fork bomb's cap.
    processes: int = field(default=64, metadata=_whole(1, 100_000))
    files: int = field(default=1024, metadata=_whole(16, 1_048_576))  # open files per process
    # The size of HEARTH_DATA, a disk of the function's own (it grows, never shrinks).
    disk: int = field(default=1024**3, metadata=_size("16MiB", "1TiB"))
    # Requests per second for the whole function (None: unlimited); 429 over it.
    rate: float | None = field(default=None, metadata=_rate("1/m", "1000000/s"))
    # Open WebSockets per version (503 past it); each holds one of an instance's
    # `concurrency` slots while open.
    websockets: int = field(default=1000, metadata=_whole(0, 1_000_000))
    # A WebSocket with no byte either way for this long is closed (1001, going away).
    websocket_idle: float = field(default=300.0, metadata=_duration("1s", "7d"))


@dataclass(frozen=True)
class Access:
    # false: every request needs one of the function's keys (`hearth keys create NAME`).
    public: bool = field(default=True, metadata=_flag())


@dataclass(frozen=True)
class Network:
    # false: a network namespace of its own with no interface up (no outbound access).
    egress: bool = field(default=True, metadata=_flag())


@dataclass(frozen=True)
class Kv:
    # true: a Redis of the function's own, its address in REDIS_URL (hearth.kv).
    enabled: bool = field(default=False, metadata=_flag())
    # Its data in memory, at most; past it, writes fail (noeviction): a store, not a cache.
    memory: int = field(default=64 * 1024**2, metadata=_size("1MiB", "64GiB"))


@dataclass(frozen=True)
class Async:
    """[async]: requests sent with `X-Hearth-Async: 1`, stored, run later (hearth.invocations)."""

    # Attempts after the first, each after a growing wait (1s, 2s, 4s... at most 5m).
    retries: int = field(default=3, metadata=_whole(0, 20))
    # Per attempt; longer than [limits] timeout may be, since nobody waits on the answer.
    timeout: float = field(default=900.0, metadata=_duration("1s", "24h"))
    # Of the function's capacity (max x concurrency), the most asynchronous work may take at
    # once: what is left is for synchronous requests, which are never starved.
    share: float = field(default=0.5, metadata=_number(0.05, 1.0))
    # A finished invocation (done or failed) and its result are removed this long after.
    keep: float = field(default=86400.0, metadata=_duration("1m", "30d"))


_Section = TypeVar("_Section", Scale, Limits, Access, Network, Kv, Async)


@dataclass(frozen=True)
class Schedule:
    """One `[[schedule]]`: the daemon sends `method path` to the function at each tick of
    `cron` (five fields, read in UTC) or `every` (seconds); exactly one of the two is set."""

    cron: str | None = None
    every: float | None = field(default=None, metadata=_duration("1s", "7d"))
    path: str = "/"
    method: str = "POST"

    @property
    def when(self) -> str:
        """How it is said to people (and in `x-hearth-schedule`): the cron expression, or
        `every 30s`."""
        if self.cron is not None:
            return self.cron
        return f"every {format_duration(self.every or 0.0)}"

    @property
    def key(self) -> str:
        """What identifies the schedule across deploys and restarts (its stored runs)."""
        return f"{self.when} {self.method} {self.path}"


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    entrypoint: str | None = None
    scale: Scale = field(default_factory=Scale)
    limits: Limits = field(default_factory=Limits)
    access: Access = field(default_factory=Access)
    network: Network = field(default_factory=Network)
    kv: Kv = field(default_factory=Kv)
    # [async] in hearth.toml (and in `to_dict`): `async` is a keyword in Python.
    background: Async = field(default_factory=Async)
    env: dict[str, str] = field(default_factory=dict)
    schedules: tuple[Schedule, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data, with each section under its hearth.toml name."""
        data = asdict(self)
        data["async"] = data.pop("background")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FunctionSpec:
        """Rebuild a spec stored by `to_dict`: trusted, so not validated again.

        Values stored by older versions stay loadable even where today's ranges are
        narrower; keys this version does not know are ignored.
        """
        return cls(
            name=data["name"],
            entrypoint=data.get("entrypoint"),
            scale=Scale(**_known(Scale, data.get("scale", {}))),
            limits=Limits(**_known(Limits, data.get("limits", {}))),
            access=Access(**_known(Access, data.get("access", {}))),
            network=Network(**_known(Network, data.get("network", {}))),
            kv=Kv(**_known(Kv, data.get("kv", {}))),
            background=Async(**_known(Async, data.get("async", {}))),
            env=dict(data.get("env", {})),
            # Specs stored before schedules existed have none.
            schedules=tuple(Schedule(**_known(Schedule, s)) for s in data.get("schedules", ())),
        )


def folder_name(folder: Path) -> str:
    """The function name for a folder: a valid `name` in its hearth.toml, else the folder's.

    Never raises: the CLI calls it before anything is validated, and a broken hearth.toml
    is reported with its reason by the deploy itself.
    """
    name = _name_in(folder / "hearth.toml")
    if name is not None:
        return name
    try:
        base = folder.resolve().name
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        base = folder.name
    return base.lower().replace("_", "-")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise SpecError(f"invalid function name {_show(name)}: {NAME_HINT}")
    return name


def parse_spec(text: str | bytes | None, default_name: str) -> FunctionSpec:
    """Validate the text of hearth.toml (None when the folder has none)."""
    data = _load(text)
    _only_known(data, "hearth.toml", _TOP_KEYS)
    name = data.get("name", default_name)
    if "name" in data:
        if not isinstance(name, str):
            raise SpecError(f'hearth.toml name = {_show(name)}: must be a string, e.g. "visits"')
        if not NAME.fullmatch(name):
            raise SpecError(f"hearth.toml name = {_show(name)}: invalid function name: {NAME_HINT}")
    check_name(name)
    entrypoint = data.get("entrypoint")
    if entrypoint is not None and not (
        isinstance(entrypoint, str) and ENTRYPOINT.fullmatch(entrypoint)
    ):
        raise SpecError(
            f"hearth.toml entrypoint = {_show(entrypoint)}: must look like "
            '"module:attribute", e.g. "main:app"'
        )
    scale = _check_scale(_section(Scale, data, "scale"), data.get("scale", {}), "hearth.toml")
    limits = _section(Limits, data, "limits")
    access = _section(Access, data, "access")
    network = _section(Network, data, "network")
    kv = _section(Kv, data, "kv")
    background = _section(Async, data, "async")
    env = _env(data.get("env", {}))
    schedules = _schedules(data.get("schedule", []))
    return FunctionSpec(
        name=name,
        entrypoint=entrypoint,
        scale=scale,
        limits=limits,
        access=access,
        network=network,
        kv=kv,
        background=background,
        env=env,
        schedules=schedules,
    )


def _check_scale(scale: Scale, given: dict[str, Any], where: str) -> Scale:
    """What holds between [scale] settings."""
    if scale.min > scale.max:
        implicit = "" if "max" in given else " (the default)" if where == "hearth.toml" else ""
        raise SpecError(
            f"{where} [scale] min = {scale.min} is more than max = {scale.max}{implicit}: "
            "need min <= max"
        )
    if scale.panic_window > scale.window:
        raise SpecError(
            f"{where} [scale] panic_window = {format_duration(scale.panic_window)!r} is "
            f"longer than window = {format_duration(scale.window)!r}: the panic window is the "
            "short one; need panic_window <= window"
        )
    return scale


# Settings `hearth scale` changes live (concurrency takes a deploy).
LIVE_SCALE = (
    "min",
    "max",
    "idle",
    "queue",
    "target",
    "window",
    "panic_window",
    "panic",
    "down_rate",
)


def rescale(scale: Scale, changes: dict[str, Any]) -> Scale:
    """`scale` with `changes` (values written as in hearth.toml), checked as a deploy
    checks them; the settings that take effect without starting instances again."""
    if "concurrency" in changes:
        raise SpecError(
            "[scale] concurrency takes a deploy: each instance is started with it "
            "(change it in hearth.toml)"
        )
    read = _section(Scale, {"scale": changes}, "scale", where="asked:")
    changed = replace(scale, **{key: getattr(read, key) for key in changes})
    return _check_scale(changed, changes, "asked:")


def _load(text: str | bytes | None) -> dict[str, Any]:
    if text is None:
        return {}
    if isinstance(text, bytes):
        if len(text) > MAX_TOML:
            raise SpecError(f"hearth.toml is {len(text)} bytes; at most 1MiB is allowed")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(
                f"hearth.toml is not UTF-8 text (byte {exc.start} is invalid); save it as UTF-8"
            ) from exc
    if len(text) > MAX_TOML:
        raise SpecError(f"hearth.toml is {len(text)} characters; at most 1MiB is allowed")
    try:
        return tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"hearth.toml is not valid TOML: {exc}") from exc
    except ValueError as exc:  # tomllib lets this through for integers over 4300 digits
        raise SpecError("hearth.toml is not valid TOML: a number has too many digits") from exc
    except RecursionError as exc:
        raise SpecError("hearth.toml is not valid TOML: arrays or tables nest too deeply") from exc


def _section(
    cls: type[_Section], data: dict[str, Any], section: str, where: str = "hearth.toml"
) -> _Section:
    """One [section] read through the rules declared on `cls`'s fields."""
    table = data.get(section, {})
    if not isinstance(table, dict):
        raise SpecError(
            f"{where} {section} = {_show(table)}: must be a table: a [{section}] line "
            "followed by key = value lines"
        )
    declared = {f.name: f for f in fields(cls)}
    _only_known(table, f"{where} [{section}]", tuple(declared))
    values: dict[str, Any] = {}
    for key, raw in table.items():
        rule: Rule = declared[key].metadata[_RULE]
        try:
            values[key] = rule.read(raw)
        except ValueError as exc:
            raise SpecError(
                f"{where} [{section}] {key} = {_show(raw)}: {rule.describe(declared[key].default)}"
            ) from exc
    return cls(**values)


def _schedules(raw: object) -> tuple[Schedule, ...]:
    """The [[schedule]] tables, each checked, at most MAX_SCHEDULES, none twice."""
    if isinstance(raw, dict):
        raise SpecError(
            "hearth.toml [schedule] is a single table: write each schedule as [[schedule]] "
            '(two brackets), e.g. [[schedule]] then every = "1m"'
        )
    if not isinstance(raw, list) or not all(isinstance(table, dict) for table in raw):
        raise SpecError(
            f"hearth.toml schedule = {_show(raw)}: must be [[schedule]] tables, each a "
            '[[schedule]] line followed by key = value lines, e.g. every = "1m"'
        )
    if len(raw) > MAX_SCHEDULES:
        raise SpecError(
            f"hearth.toml has {len(raw)} [[schedule]] tables; at most {MAX_SCHEDULES} are allowed"
        )
    schedules: list[Schedule] = []
    for number, table in enumerate(raw, 1):
        where = f"hearth.toml [[schedule]] #{number}"
        schedule = _schedule(table, where)
        same = next((i for i, s in enumerate(schedules, 1) if s.key == schedule.key), None)
        if same is not None:
            raise SpecError(
                f"{where} is the same as #{same} ({schedule.when}, {schedule.method} "
                f"{schedule.path}): remove one"
            )
        schedules.append(schedule)
    return tuple(schedules)


def _schedule(table: dict[str, Any], where: str) -> Schedule:
    # croniter loads only to read a schedule: the CLI imports this module on every command.
    from hearth.scheduler.timing import CRON_FIELDS, cron_problem

    _only_known(table, where, tuple(f.name for f in fields(Schedule)))
    if ("cron" in table) == ("every" in table):
        has = " (it has both)" if "cron" in table else ""
        raise SpecError(
            f'{where}: needs exactly one of cron = "*/5 * * * *" (UTC) or every = "30s"{has}'
        )
    cron: str | None = None
    every: float | None = None
    if "cron" in table:
        raw = table["cron"]
        if not isinstance(raw, str) or len(raw) > MAX_CRON or not CRON_TEXT.fullmatch(raw):
            raise SpecError(
                f"{where} cron = {_show(raw)}: must be a string of five fields ({CRON_FIELDS}), "
                'e.g. "*/5 * * * *"'
            )
        problem = cron_problem(raw)
        if problem is not None:
            raise SpecError(f"{where} cron = {_show(raw)}: {problem}")
        cron = " ".join(raw.split())
    else:
        rule: Rule = next(f for f in fields(Schedule) if f.name == "every").metadata[_RULE]
        try:
            every = float(rule.read(table["every"]))
        except ValueError as exc:
            raise SpecError(
                f"{where} every = {_show(table['every'])}: must be a duration from "
                f'{rule.low_text} to {rule.high_text} (e.g. "30s")'
            ) from exc
    return Schedule(
        cron=cron,
        every=every,
        path=_schedule_path(table.get("path", "/"), where),
        method=_schedule_method(table.get("method", "POST"), where),
    )


def _schedule_path(path: object, where: str) -> str:
    """The request target the daemon sends: it must reach this function and no other."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise SpecError(
            f'{where} path = {_show(path)}: must be a path starting with "/", e.g. "/tasks/cleanup"'
        )
    if len(path) > MAX_SCHEDULE_PATH:
        raise SpecError(
            f"{where} path is {len(path)} bytes; at most {MAX_SCHEDULE_PATH} are allowed"
        )
    if not SCHEDULE_PATH.fullmatch(path):
        raise SpecError(
            f"{where} path = {_show(path)}: must be printable ASCII without spaces "
            "(percent-encode anything else, e.g. %20 for a space)"
        )
    if "#" in path:
        raise SpecError(f"{where} path = {_show(path)}: a fragment (#...) is never sent; drop it")
    # A client may resolve dot segments: /fn/NAME/../other would call another function.
    if any(step in (".", "..") for step in path.split("?", 1)[0].split("/")):
        raise SpecError(
            f"{where} path = {_show(path)}: '.' and '..' segments are not allowed; write the "
            "path they lead to"
        )
    return path


def _schedule_method(method: object, where: str) -> str:
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise SpecError(f"{where} method = {_show(method)}: must be one of {', '.join(METHODS)}")
    return method.upper()


def _env(table: object) -> dict[str, str]:
    if not isinstance(table, dict):
        raise SpecError(
            f"hearth.toml env = {_show(table)}: must be a table: an [env] line followed by "
            'NAME = "value" lines'
        )
    if len(table) > MAX_ENV_KEYS:
        raise SpecError(
            f"hearth.toml [env] has {len(table)} variables; at most {MAX_ENV_KEYS} are allowed"
        )
    env: dict[str, str] = {}
    for key, raw in table.items():
        where = f"hearth.toml [env] {_key(key)}"
        problem = env_name_problem(key)
        if problem is not None:
            raise SpecError(f"{where}: {problem}")
        value = _env_value(raw)
        if value is None:
            raise SpecError(
                f"{where} = {_show(raw)}: must be a string, a finite number or true/false "
                '(e.g. "hello")'
            )
        problem = env_value_problem(value)
        if problem is not None:
            raise SpecError(f"{where}: {problem}")
        env[key] = value
    return env


def env_name_problem(key: str) -> str | None:
    """What is wrong with an environment variable name a function sets; None if nothing.

    The same rules hold for [env] and for secrets, which reach the instance the same way.
    """
    if not ENV_KEY.fullmatch(key):
        return (
            "a variable name holds only letters, digits and '_' and does not start with a "
            "digit (e.g. GREETING)"
        )
    if key.startswith(ENV_RESERVED_PREFIX):
        return (
            f"names starting with {ENV_RESERVED_PREFIX} are reserved for the platform; "
            "choose another name"
        )
    return None


def env_value_problem(value: str) -> str | None:
    """What keeps `value` from being an environment variable's value; None if nothing.

    Never echoes the value: it may be a secret.
    """
    if "\0" in value:
        return "the value contains a NUL character, which an environment variable cannot hold"
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_ENV_VALUE:
        return f"the value is {size} bytes; at most 32KiB ({MAX_ENV_VALUE}) is allowed"
    return None


def _env_value(raw: object) -> str | None:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float) and math.isfinite(raw):
        return str(raw)
    return None


def _only_known(table: dict[str, Any], where: str, known: tuple[str, ...]) -> None:
    unknown = [key for key in table if key not in known]
    if unknown:
        shown = ", ".join(_key(key) for key in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        plural = "s" if len(unknown) > 1 else ""
        raise SpecError(f"{where}: unknown key{plural} {shown}; known: {', '.join(sorted(known))}")


def _known(cls: type[Any], stored: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in stored.items() if key in names}


def _name_in(toml: Path) -> str | None:
    """`name` from a hearth.toml when it is readable, valid and a valid name; else None."""
    try:
        if not toml.is_file():  # also keeps a FIFO from blocking the read
            return None
        with toml.open("rb") as file:
            raw = file.read(MAX_TOML + 1)
        data = _load(raw)
    except (OSError, SpecError):
        return None
    name = data.get("name")
    return name if isinstance(name, str) and NAME.fullmatch(name) else None


def _key(key: str) -> str:
    """A key as it would be written in TOML: bare when it can be, quoted otherwise."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key):
        return key
    return _show(key)


def _show(value: object, depth: int = 0) -> str:
    """A value as it would be written in TOML, shortened: error messages echo user input."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        clipped = json.dumps(value[:_SHOWN])  # quoted, control characters escaped
        return clipped + ("..." if len(value) > _SHOWN else "")
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 128 else "a number of more than 38 digits"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, list | dict) and value and depth >= 2:
        return "[...]" if isinstance(value, list) else "{ ... }"
    if isinstance(value, list):
        inner = ", ".join(_show(item, depth + 1) for item in value[:3])
        return f"[{inner}{', ...' if len(value) > 3 else ''}]"
    if isinstance(value, dict):
        items = list(itertools.islice(value.items(), 4))
        inner = ", ".join(f"{_key(str(k))} = {_show(v, depth + 1)}" for k, v in items[:3])
        return f"{{ {inner}{', ...' if len(items) > 3 else ''} }}" if inner else "{}"
    isoformat = getattr(value, "isoformat", None)  # TOML dates and times
    if callable(isoformat):
        return str(isoformat())
    return repr(value)[:_SHOWN]
