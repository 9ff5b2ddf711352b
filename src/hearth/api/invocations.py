"""Asynchronous invocations through the API: one by its id (no token needed: the id is the
credential, see `hearth.api.scopes`), a function's list, and the retry of a dead letter."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import WithJsonSchema

from hearth.api.errors import declare
from hearth.api.models import Invocation, InvocationListed
from hearth.api.params import Name
from hearth.api.scopes import Scope, owns
from hearth.control import ControlPlane
from hearth.invocations import ID, Invocations
from hearth.invocations.model import Status

ID_IN_PATH: dict[str, Any] = {"type": "string", "pattern": f"^{ID.pattern}$"}
InvocationInPath = Annotated[
    str,
    Path(description="The invocation's id, as the 202 gave it."),
    WithJsonSchema(ID_IN_PATH),
]
GONE = "it may have finished longer ago than its function's [async] keep, and been removed"


def _id_in_path(invocation: InvocationInPath) -> str:
    if not ID.fullmatch(invocation):
        raise HTTPException(404, f"no invocation with id {invocation[:40]!r}: {GONE}")
    return invocation


InvocationId = Annotated[str, Depends(_id_in_path)]


def invocation_routes(plane: ControlPlane, invocations: Invocations) -> APIRouter:
    router = APIRouter()

    def unknown(invocation: str) -> HTTPException:
        return HTTPException(404, f"no invocation with id {invocation!r}: {GONE}")

    @router.get(
        "/v1/invocations/{invocation}",
        response_model=Invocation,
        responses=declare(404),
    )
    async def show(invocation: InvocationId) -> dict[str, Any]:
        """An asynchronous invocation: its status, attempts, last error and result. No
        token is needed: the id (in the 202's Location) is the credential."""
        found = invocations.store.get(invocation)
        if found is None:
            raise unknown(invocation)
        return found.describe()

    @router.post(
        "/v1/invocations/{invocation}/retry",
        response_model=Invocation,
        responses=declare(404, 409),
    )
    async def retry(request: Request, invocation: InvocationId) -> dict[str, Any]:
        """Queue a failed invocation (a dead letter) again, with its retries afresh."""
        found = invocations.store.get(invocation)
        scope = getattr(request.state, "scope", None)
        if found is None or not isinstance(scope, Scope) or not owns(scope, found.function):
            raise unknown(invocation)  # another function's is none of this token's business
        if not invocations.retry(invocation):
            raise HTTPException(
                409,
                f"invocation {invocation} is {found.status}, not failed: only a failed "
                "invocation can be retried",
            )
        again = invocations.store.get(invocation)
        if again is None:  # removed with its function in between
            raise unknown(invocation)
        return again.describe()

    @router.get(
        "/v1/functions/{name}/invocations",
        response_model=list[InvocationListed],
        responses=declare(404, 422),
    )
    async def listing(
        name: Name,
        status: Annotated[Status | None, Query(description="Only those in this state.")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many.")] = 100,
    ) -> list[dict[str, Any]]:
        """The function's asynchronous invocations, newest first, without results."""
        plane.views.describe(name, brief=True)  # 404 for no such function
        return [i.brief() for i in invocations.store.listing(name, status, limit)]

    return router
