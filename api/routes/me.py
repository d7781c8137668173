"""/v1/me: the key a request came with, so that a client (the web manager) offers only what it may do."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import Key
from api.schemas import ErrorBody, KeyView

router = APIRouter(tags=["keys"])
_ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody}}


@router.get("/v1/me", response_model=KeyView, responses=_ERRORS)
async def me(key: Key) -> KeyView:
    """The key's id, name and scope: ``write`` may submit, pause, resume, cancel and edit lists;
    ``read`` only reads."""
    return KeyView(id=key.id, name=key.name, scope=key.scope)
