"""Path parameters shared by the API's operations, checked before any handler runs."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, HTTPException, Path
from pydantic import WithJsonSchema

from hearth.api.models import ID_SCHEMA, NAME_SCHEMA
from hearth.control import NotFound
from hearth.spec import NAME

ID = re.compile(ID_SCHEMA["pattern"])

NameInPath = Annotated[str, Path(description="The function's name."), WithJsonSchema(NAME_SCHEMA)]
IdInPath = Annotated[str, Path(description="A token's or key's id."), WithJsonSchema(ID_SCHEMA)]


def _name_in_path(name: NameInPath) -> str:
    """A name that cannot be a function's is the name of no function: 404."""
    if not NAME.fullmatch(name):
        raise NotFound(name)
    return name


def _id_in_path(id: IdInPath) -> str:
    """An id that cannot be one is the id of nothing: 404."""
    if not ID.fullmatch(id):
        raise HTTPException(404, f"no token or key with id {id[:40]!r}")
    return id


Name = Annotated[str, Depends(_name_in_path)]
Id = Annotated[str, Depends(_id_in_path)]
