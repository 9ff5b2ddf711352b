"""What a token may do: its scope, and the one decision `allowed(scope, method, path)`.

- `admin`: everything.
- `read`: GET (and HEAD) on everything but tokens and backups. No answer holds a secret's
  value.
- `deploy:NAME`: function NAME only: deploy, rollback, traffic, scale, status, versions,
  events, logs, metrics, data, keys, secrets, schedules and invocations. It cannot remove
  NAME, touch another function or any token; `GET /v1/functions`, `GET /v1/metrics` and
  `GET /v1/schedules` answer with NAME alone, and the Prometheus scrape (`GET /metrics`,
  every function) is not for it.

An asynchronous invocation is reached by its id alone (`/v1/invocations/ID`), a path that
does not name its function:
- `GET` (and `HEAD`) of one invocation needs no token at all (`by_capability`): its id is
  128 random bits, given only to the client that sent the request (in the 202), to the
  function (`X-Hearth-Invocation-Id`) and to tokens that may read the function; it is
  the credential for reading that one invocation, the way the URL of a presigned download
  is. That client has no API token, and its result would be out of its reach otherwise.
- `POST .../retry` needs a token: an admin's, or a deploy token whose function the
  invocation is (`owns`, decided once the invocation is read: another's is a 404).

The decision lists what is allowed, so an operation added later is closed to every scope
but admin until it is listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hearth.invocations.model import ID as INVOCATION_ID
from hearth.spec import NAME

SAFE = frozenset({"GET", "HEAD"})
TOKENS = "/v1/tokens"
BACKUP = "/v1/backup"
FUNCTIONS = "/v1/functions"
SCHEDULES = "/v1/schedules"
INVOCATIONS = "/v1/invocations"
# Under /v1/functions/NAME/: what a deploy token may use, with any method.
DEPLOY_RESOURCES = frozenset(
    {
        *("versions", "traffic", "rollback", "scale", "events", "logs", "metrics"),
        *("data", "keys", "secrets", "schedules", "invocations"),
    }
)
# Outside its function: what a deploy token may read.
DEPLOY_READS = frozenset({FUNCTIONS, "/v1/info", "/v1/metrics", SCHEDULES})
SCOPE_HELP = "a scope is 'admin', 'read' or 'deploy:NAME' (NAME a function name)"


@dataclass(frozen=True)
class Scope:
    kind: Literal["admin", "read", "deploy"]
    function: str | None = None

    def __str__(self) -> str:
        return f"deploy:{self.function}" if self.kind == "deploy" else self.kind

    @classmethod
    def parse(cls, text: str) -> Scope:
        """'admin', 'read' or 'deploy:NAME'; ValueError naming what is wrong otherwise."""
        if text == "admin":
            return cls("admin")
        if text == "read":
            return cls("read")
        kind, colon, function = text.partition(":")
        if kind == "deploy" and colon and NAME.fullmatch(function):
            return cls("deploy", function)
        raise ValueError(f"unknown scope {text[:80]!r}: {SCOPE_HELP}")

    def sees(self, function: str) -> bool:
        """Whether lists answered to this scope show `function`."""
        return self.kind != "deploy" or function == self.function


def by_capability(method: str, path: str) -> bool:
    """Whether the request needs no token: reading one invocation, named by its id."""
    if method not in SAFE or not path.startswith(INVOCATIONS + "/"):
        return False
    return INVOCATION_ID.fullmatch(path[len(INVOCATIONS) + 1 :]) is not None


def owns(scope: Scope, function: str) -> bool:
    """Whether a token that `allowed` through to an invocation's retry may retry one of
    `function`: an admin, or a deploy token of that function."""
    return scope.kind == "admin" or (scope.kind == "deploy" and scope.function == function)


def allowed(scope: Scope, method: str, path: str) -> bool:
    """May a token of `scope` send `method` to `path` (the request's decoded path)?"""
    if scope.kind == "admin":
        return True
    if any(part in ("", ".", "..") for part in path.split("/")[1:]):
        return False  # no operation has such a path; refused before anything resolves it
    if path in (TOKENS, BACKUP) or path.startswith(TOKENS + "/"):
        return False  # tokens, and a backup (it holds the key to every secret): admin only
    if scope.kind == "read":
        return method in SAFE
    if path in DEPLOY_READS:
        return method in SAFE
    if path.startswith(INVOCATIONS + "/"):  # names no function: `owns` decides, once read
        invocation, _, action = path[len(INVOCATIONS) + 1 :].partition("/")
        if INVOCATION_ID.fullmatch(invocation) is None:
            return False
        return (action == "" and method in SAFE) or (action == "retry" and method == "POST")
    own = f"{FUNCTIONS}/{scope.function}"
    if path == own:
        return method in SAFE  # its status; removing the function is for admins
    if not path.startswith(own + "/"):
        return False
    resource = path[len(own) + 1 :].split("/", 1)[0]
    return resource in DEPLOY_RESOURCES
