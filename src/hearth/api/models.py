"""The shapes the control API reads and writes, as the OpenAPI document declares them.

Response models describe the dictionaries `hearth.daemon.functions` builds; they allow
extra keys, so a field added there reaches clients (and the document says more may come),
while a field taken away fails loudly instead of silently changing the answer.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from hearth.spec import NAME
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


class Limits(Answer):
    timeout: float
    body: int
    memory: int
    drain: float
    liveness: float


class Spec(Answer):
    """hearth.toml as validated (see `hearth.spec.FunctionSpec`)."""

    name: str
    entrypoint: str | None
    scale: Scale
    limits: Limits
    env: dict[str, str]


class Version(Answer):
    number: int
    status: Literal["deploying", "ready", "serving", "failed"]
    traffic: float = Field(description="Share of requests, in percent.")
    created: float = Field(description="Unix time.")
    bundle: str = Field(description="SHA-256 of the bundle.")
    error: str | None


class FunctionDetail(FunctionBrief):
    spec: Spec | None
    env: str | None
    last_error: str | None
    next_try_in: float | None = Field(description="Seconds until the next start attempt.")
    versions: list[Version]


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


class Removed(Answer):
    removed: str


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
