"""Who may do what: API tokens, the invoke keys of private functions, and secrets.

Tokens and keys are shown once, when made; afterwards only their ids. Secrets are written
and listed by name; no answer ever holds a value.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from pydantic import WithJsonSchema

from hearth.api.errors import declare
from hearth.api.models import (
    SECRET_NAME_SCHEMA,
    KeyInfo,
    NewKey,
    NewToken,
    Revoked,
    SecretBody,
    SecretInfo,
    SecretRemoved,
    SecretSet,
    TokenBody,
    TokenInfo,
)
from hearth.api.params import Id, Name
from hearth.control import ControlPlane
from hearth.spec import env_name_problem
from hearth.store import Store
from hearth.store.db import FILE_TOKEN

SecretName = Annotated[
    str, Path(description="The environment variable's name."), WithJsonSchema(SECRET_NAME_SCHEMA)
]


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _secret_name(name: str) -> str:
    problem = env_name_problem(name)
    if problem is not None:
        raise HTTPException(400, f"secret {name[:40]!r}: {problem}")
    return name


def access_routes(plane: ControlPlane, store: Store) -> APIRouter:
    router = APIRouter()

    # tokens (admin only: see hearth.api.scopes)

    @router.post(
        "/v1/tokens", status_code=201, response_model=NewToken, responses=declare(400, 422)
    )
    async def create_token(body: TokenBody) -> dict[str, Any]:
        """A new API token with a scope: admin, read or deploy:NAME. The answer holds the
        token; this is the only time it is shown."""
        token = new_token()
        return {**store.add_token(token, body.name, body.scope), "token": token}

    @router.get("/v1/tokens", response_model=list[TokenInfo])
    async def list_tokens() -> list[dict[str, Any]]:
        """Every token: id, name, scope, creation time (never the token)."""
        return store.tokens()

    @router.delete("/v1/tokens/{id}", response_model=Revoked, responses=declare(400, 404))
    async def revoke_token(id: Id) -> dict[str, Any]:
        if id == FILE_TOKEN:
            raise HTTPException(
                400,
                "the admin token of the data directory's 'token' file cannot be revoked "
                "through the API: write a new token into that file and restart the daemon",
            )
        if not store.revoke_token(id):
            raise HTTPException(404, f"no token with id {id!r} ('hearth tokens ls' lists them)")
        return {"revoked": id}

    # keys of private functions

    @router.post(
        "/v1/functions/{name}/keys", status_code=201, response_model=NewKey, responses=declare(404)
    )
    async def create_key(name: Name) -> dict[str, Any]:
        """A new key for calling the function when it is private ([access] public = false).
        The answer holds the key; this is the only time it is shown."""
        return plane.secrets.create_key(name)

    @router.get("/v1/functions/{name}/keys", response_model=list[KeyInfo], responses=declare(404))
    async def list_keys(name: Name) -> list[dict[str, Any]]:
        return plane.store.keys(name)

    @router.delete("/v1/functions/{name}/keys/{id}", response_model=Revoked, responses=declare(404))
    async def revoke_key(name: Name, id: Id) -> dict[str, Any]:
        """The key stops working at once."""
        if not plane.secrets.revoke_key(name, id):
            raise HTTPException(
                404, f"{name} has no key with id {id!r} ('hearth keys ls {name}' lists them)"
            )
        return {"revoked": id}

    # secrets

    @router.get(
        "/v1/functions/{name}/secrets", response_model=list[SecretInfo], responses=declare(404)
    )
    async def list_secrets(name: Name) -> list[dict[str, Any]]:
        """Names and update times; values are never shown."""
        return plane.store.secret_names(name)

    @router.put(
        "/v1/functions/{name}/secrets/{key}",
        response_model=SecretSet,
        responses=declare(400, 404, 409, 422),
    )
    async def set_secret(name: Name, key: SecretName, body: SecretBody) -> dict[str, Any]:
        """Set a secret: an environment variable of every instance, stored encrypted. The
        serving instances are replaced (zero downtime) to take the new value."""
        return await plane.secrets.set_secret(name, _secret_name(key), body.value)

    @router.delete(
        "/v1/functions/{name}/secrets/{key}",
        response_model=SecretRemoved,
        responses=declare(400, 404, 409),
    )
    async def remove_secret(name: Name, key: SecretName) -> dict[str, Any]:
        """Remove a secret; the serving instances are replaced (zero downtime) without it."""
        result = await plane.secrets.remove_secret(name, _secret_name(key))
        if result is None:
            raise HTTPException(
                404, f"{name} has no secret {key!r} ('hearth secrets ls {name}' lists them)"
            )
        return result

    return router
