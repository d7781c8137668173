"""/v1/send-times: the model optimised jobs pick each recipient's time from (``ulak.sendtime``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import Key, Plane, WriteKey
from api.schemas import ErrorBody, SendTimeModel, SendTimeRefreshed

router = APIRouter(prefix="/v1/send-times", tags=["send times"])
_ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody}, 403: {"model": ErrorBody}}


@router.get("", response_model=SendTimeModel, responses=_ERRORS)
async def model(plane: Plane, key: Key) -> SendTimeModel:
    """How much the model has learned: engagements folded, when, and the audience's hours."""
    return SendTimeModel(**await run_in_threadpool(plane.send_time_model))


@router.post("/refresh", response_model=SendTimeRefreshed, responses=_ERRORS)
async def refresh(plane: Plane, key: WriteKey) -> SendTimeRefreshed:
    """Fold the engagement since the last refresh now (the API does every hour, and an optimised job
    as it is planned)."""
    return SendTimeRefreshed(folded=await run_in_threadpool(plane.refresh_send_times))
