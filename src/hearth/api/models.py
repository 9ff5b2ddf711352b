"""The shapes the control API reads and writes, as the OpenAPI document declares them.

Response models describe the dictionaries the control plane's views build; they allow
extra keys, so a field added there reaches clients (and the document says more may come),
while a field taken away fails loudly instead of silently changing the answer.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from hearth.api.scopes import SCOPE_HELP, Scope
from hearth.spec import NAME, env_value_problem
from hearth.supervisor import InstanceState

VERSION_DIGITS = r"[0-9]{1,9}"
VERSION_KEY = f"^{VERSION_DIGITS}$"
MAX_WEIGHT = 100_000

# A traffic split as JSON: version numbers (as strings of digits) to shares.
TRAFFIC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"pattern": VERSION_KEY},
    "additionalProperties": {"type": "integer", "minimum": 0, "maximum": MAX_WEIGHT},
    "description": 'Version numbers (strings of digits) to shares, e.g. {"3": 90, "4": 10}.',
}
NAME_SCHEMA: dict[str, Any] = {"type": "string", "pattern": NAME.pattern}
SCOPE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": f"^(admin|read|deploy:{NAME.pattern[1:-1]})$",
    "description": "admin, read, or deploy:NAME (one function).",
}
ID_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-z]{1,16}$"}
SECRET_NAME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
    "description": "An environment variable name, not starting with HEARTH_.",
}
MAX_SECRET = 32 * 1024
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


def _no_default(schema: dict[str, Any]) -> None:
    schema["properties"]["function"].pop("default", None)


class Error(BaseModel):
    """Every error answer: what went wrong and what to do."""

    model_config = ConfigDict(json_schema_extra=_no_default)

    error: str
    function: str | SkipJsonSchema[None] = Field(
        default=None, description="The function the error is about, when it is about one."
    )


class Answer(BaseModel):
    """A response body: extra keys pass through and are allowed by the document."""

    model_config = ConfigDict(extra="allow")


class Health(Answer):
    ok: bool
    version: str


class Zygote(Answer):
    key: str  # "root", or FUNCTION@VERSION for a version's zygote
    pid: int | None


class Info(Answer):
    version: str
    gateway: str
    api: str
    domain: str
    data_dir: str
    sandbox: str
    zygotes: list[Zygote]


class Instance(Answer):
    id: str
    version: int
    pid: int
    state: InstanceState
    in_flight: int
    requests: int
    age: float = Field(description="Seconds since the instance started.")
    memory_bytes: int = Field(description="Resident memory, as last polled (every 3 s).")


Traffic = Annotated[dict[str, int], WithJsonSchema(TRAFFIC_SCHEMA)]


class FunctionBrief(Answer):
    name: str
    version: int | None = Field(description="The version with the largest share, if any.")
    traffic: Traffic
    urls: list[str]
    instances: list[Instance]
    starting: int
    queued: int


class Scale(Answer):
    min: int
    max: int
    concurrency: int
    idle: float
    queue: int
    target: float = 0.7
    window: float = 60.0
    panic_window: float = 6.0
    panic: float = 2.0
    down_rate: float = 2.0


class Rescaled(Answer):
    """The [scale] settings of each serving version after `PATCH .../scale`."""

    name: str
    changed: str = Field(description='What changed, e.g. "min 1 -> 3, max 8 -> 20".')
    scale: dict[str, Scale] = Field(description="By version number.")


class Limits(Answer):
    timeout: float
    body: int
    memory: int
    drain: float
    liveness: float
    rate: float | None = Field(description="Requests per second; null: no limit.")


class Access(Answer):
    public: bool = Field(description="false: every request needs one of the function's keys.")


class KvSettings(Answer):
    enabled: bool = Field(description="true: a Redis of the function's own, in REDIS_URL.")
    memory: int = Field(description="Its maxmemory in bytes (noeviction past it).")


class KvServer(Answer):
    """The function's running KV server, as the daemon keeps it."""

    running: bool
    pid: int | None
    memory_limit: int = Field(description="Its maxmemory now, in bytes.")
    url: str = Field(description="What the function finds in REDIS_URL.")


class ScheduleSetting(Answer):
    """One [[schedule]] of hearth.toml: exactly one of `cron` and `every` is set."""

    cron: str | None = Field(description="Five fields, read in UTC.")
    every: float | None = Field(description="Seconds between runs.")
    path: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class AsyncSettings(Answer):
    retries: int = Field(description="Attempts after the first.")
    timeout: float = Field(description="Seconds per attempt.")
    share: float = Field(description="Of max x concurrency, the most that runs async work.")
    keep: float = Field(description="Seconds a finished invocation and its result are kept.")


class Spec(Answer):
    """hearth.toml as validated (see `hearth.spec.FunctionSpec`)."""

    name: str
    entrypoint: str | None
    scale: Scale
    limits: Limits
    access: Access
    kv: KvSettings | None = None
    background: AsyncSettings | None = Field(None, alias="async", description="[async]")
    env: dict[str, str]
    schedules: list[ScheduleSetting] = []


class Version(Answer):
    number: int
    status: Literal["deploying", "ready", "serving", "failed"]
    traffic: float = Field(description="Share of requests, in percent.")
    created: float = Field(description="Unix time.")
    bundle: str = Field(description="SHA-256 of the bundle.")
    error: str | None


class InvocationCounts(Answer):
    """A function's asynchronous invocations, by status (those kept)."""

    queued: int
    running: int
    done: int
    failed: int


class FunctionDetail(FunctionBrief):
    spec: Spec | None
    env: str | None
    last_error: str | None
    next_try_in: float | None = Field(description="Seconds until the next start attempt.")
    versions: list[Version]
    kv: KvServer | None = Field(None, description="Its KV server, if it has one.")
    invocations: InvocationCounts | None = None


class Callback(Answer):
    url: str = Field(description="Where the result is POSTed once the invocation finishes.")
    state: Literal["pending", "delivered", "failed"] | None = Field(
        description="null until the invocation finishes."
    )


class InvocationBrief(Answer):
    """An asynchronous invocation, as lists show it (no result)."""

    id: str = Field(description="128 random bits, url-safe; also the way to read it.")
    function: str
    status: Literal["queued", "running", "done", "failed"] = Field(
        description="failed: a dead letter (retries used up, or a 4xx other than 429)."
    )
    method: str
    url: str = Field(description="The request target as sent (path and query).")
    request_id: str
    attempts: int = Field(description="Attempts begun (an interrupted one counts).")
    created: float = Field(description="Unix time it was accepted.")
    updated: float = Field(description="Unix time of its last change.")
    next_try: float | None = Field(description="When queued: Unix time it is due.")
    last_error: str | None = Field(
        description="What the last failed attempt got: status and body, or the error."
    )
    callback: Callback | None


class InvocationListed(InvocationBrief):
    result_status: int | None = Field(description="The status of the kept answer, if any.")


class InvocationResult(Answer):
    status: int
    headers: list[list[str]] = Field(description="[name, value] pairs, in order.")
    body: str = Field(description="UTF-8 text, or base64 when `base64` is true.")
    base64: bool
    truncated: bool = Field(description="The body was over 1 MiB: only its first MiB is kept.")


class Invocation(InvocationBrief):
    result: InvocationResult | None = Field(
        description="The function's answer (done), or its last one (failed), if there was one."
    )


class Change(Answer):
    """What serves after a deploy, a traffic change or a rollback."""

    name: str
    version: int
    traffic: Traffic
    urls: list[str]
    seconds: float
    instances: list[Instance]


class Event(Answer):
    id: int
    time: float = Field(description="Unix time.")
    kind: str
    message: str


class ScheduleState(ScheduleSetting):
    """A serving schedule: its setting, its next tick and its last run."""

    function: str
    schedule: str = Field(description='As people say it: the cron expression, or "every 30s".')
    next_run: float = Field(description="Unix time of its next tick.")
    last_run: float | None = Field(description="Unix time its last run started; null: none yet.")
    last_status: int | None = Field(
        description="The last run's HTTP status; null: none yet, running, or no answer "
        "(then last_error says why)."
    )
    last_seconds: float | None = Field(description="How long the last run took.")
    last_error: str | None = Field(description="Why the last run had no answer, if it had none.")
    running: bool = Field(description="A run is in flight (runs of a schedule never overlap).")


class MetricsPoint(Answer):
    t: int = Field(description="Unix time at the start of the interval.")
    seconds: int = Field(description="The interval: 1 (the last 15 minutes) or 60.")
    rps: float
    errors_per_s: float = Field(description="Answers with a 5xx status, per second.")
    p50_ms: float = Field(description="Median request duration, queue wait included.")
    p99_ms: float
    instances: int = Field(description="Ready instances (the most seen in the interval).")
    in_flight: int
    queued: int
    memory_bytes: int = Field(description="Resident memory of all its instances.")


class FunctionMetrics(Answer):
    function: str
    points: list[MetricsPoint] = Field(description="Oldest first.")


class VersionNow(Answer):
    function: str
    version: int
    weight: int
    rps: float
    errors_per_s: float
    p50_ms: float
    p99_ms: float
    instances: int
    in_flight: int
    queued: int
    memory_bytes: int


class MetricsNow(Answer):
    window_s: int = Field(description="The rates are over this many last seconds.")
    versions: list[VersionNow] = Field(description="Serving versions, busiest first.")


class DataEntry(Answer):
    name: str
    kind: Literal["file", "dir", "link", "other"]
    size: int
    modified: float


class DataListing(Answer):
    path: str
    entries: list[DataEntry]


class DataWritten(Answer):
    path: str
    bytes: int


class Removed(Answer):
    removed: str
    data: str | None = Field(
        description="Where its data (HEARTH_DATA) is kept; null once purged (or if none)."
    )
    purged: bool


class TokenInfo(Answer):
    id: str
    name: str
    scope: str = Field(description="admin, read, or deploy:NAME.")
    created: float = Field(description="Unix time.")


class NewToken(TokenInfo):
    token: str = Field(description="The token itself: shown this once, never stored.")


class Revoked(Answer):
    revoked: str


class KeyInfo(Answer):
    id: str
    created: float = Field(description="Unix time.")


class NewKey(KeyInfo):
    function: str
    key: str = Field(description="The key itself: shown this once, never stored.")


class SecretInfo(Answer):
    """A secret as the API shows it: its name, never its value."""

    name: str
    updated: float = Field(description="Unix time of the last change.")


class SecretSet(SecretInfo):
    function: str
    rolled: bool = Field(description="Whether serving instances were replaced to take it.")


class SecretRemoved(Answer):
    function: str
    removed: str
    rolled: bool


DEPLOY_LINE_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "properties": {"log": {"type": "string"}},
            "required": ["log"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"result": {"$ref": "#/components/schemas/Change"}},
            "required": ["result"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"error": {"type": "string"}},
            "required": ["error"],
            "additionalProperties": False,
        },
    ],
    "description": "One JSON object per line: progress ({'log'}), then {'result'} or {'error'}.",
}


# requests


def _json_integer(value: Any) -> Any:
    """An integer as JSON Schema means it (2.0 is one), but neither "2" nor true."""
    if isinstance(value, str | bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


# Bounds before the validator: pydantic then writes them as JSON Schema keywords.
Share = Annotated[int, Field(ge=0, le=MAX_WEIGHT), BeforeValidator(_json_integer)]
VersionNumber = Annotated[int, Field(ge=1), BeforeValidator(_json_integer)]


Duration = Annotated[
    str | float,
    Field(description='Seconds, or a duration as in hearth.toml: "300ms", "5m", "1h".'),
]


class ScaleBody(BaseModel):
    """The [scale] settings to change, written as in hearth.toml; each is checked as a
    deploy checks it. `concurrency` takes a deploy (instances are started with it)."""

    model_config = ConfigDict(extra="forbid")

    min: Annotated[int, BeforeValidator(_json_integer)] | None = None
    max: Annotated[int, BeforeValidator(_json_integer)] | None = None
    idle: Duration | None = None
    queue: Annotated[int, BeforeValidator(_json_integer)] | None = None
    target: float | None = None
    window: Duration | None = None
    panic_window: Duration | None = None
    panic: float | None = None
    down_rate: float | None = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class TrafficBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: Annotated[
        dict[str, Share],
        Field(min_length=1),
        WithJsonSchema({**TRAFFIC_SCHEMA, "minProperties": 1}),
    ]

    @field_validator("weights", mode="before")
    @classmethod
    def _version_keys(cls, value: Any) -> Any:
        """Said plainly, before pydantic's own words about a pattern."""
        for key in value if isinstance(value, dict) else ():
            if not isinstance(key, str) or not re.fullmatch(VERSION_DIGITS, key):
                raise PydanticCustomError(
                    "version_key",
                    "keys are version numbers written as digits, e.g. "
                    '{"weights": {"3": 90, "4": 10}}; {key} is not one',
                    {"key": repr(key)},
                )
        return value

    def split(self) -> dict[int, int]:
        return {int(version): share for version, share in self.weights.items()}


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: VersionNumber | None = Field(
        default=None,
        description="The version to serve; by default the newest good one before the serving one.",
    )


def _scope(value: Any) -> Any:
    if isinstance(value, str):
        try:
            Scope.parse(value)
        except ValueError:
            raise PydanticCustomError("scope", SCOPE_HELP) from None
    return value


def _printable(value: str) -> str:
    if not re.fullmatch(PRINTABLE, value):
        raise PydanticCustomError("printable", "must be printable text, without control characters")
    return value


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Annotated[str, BeforeValidator(_scope), WithJsonSchema(SCOPE_SCHEMA)]
    name: Annotated[
        str,
        Field(
            max_length=100,
            json_schema_extra={"pattern": PRINTABLE},
            description="A label for people: who or what holds the token.",
        ),
        AfterValidator(_printable),
    ] = ""


class SecretBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(
        max_length=MAX_SECRET,
        description="The value, as the instance's environment variable will hold it.",
    )

    @field_validator("value")
    @classmethod
    def _fits_the_environment(cls, value: str) -> str:
        try:
            value.encode()
        except UnicodeEncodeError:
            raise PydanticCustomError("secret", "the value is not valid Unicode text") from None
        problem = env_value_problem(value)
        if problem is not None:
            raise PydanticCustomError("secret", problem)
        return value
