"""/v1/conversions: what recipients did after a campaign, counted for the job that earned it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from api.deps import Plane, WriteKey
from api.schemas import ConversionIn, ConversionOut, ErrorBody

router = APIRouter(prefix="/v1/conversions", tags=["conversions"])


@router.post(
    "",
    response_model=ConversionOut,
    status_code=201,
    responses={
        200: {"model": ConversionOut, "description": "this event id was counted before: its first answer"},
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        404: {"model": ErrorBody, "description": "no such link, job, recipient or message"},
        409: {"model": ErrorBody, "description": "the job's rows are not prepared yet"},
        422: {"model": ErrorBody},
    },
)
async def record_conversion(
    event: ConversionIn, response: Response, plane: Plane, key: WriteKey
) -> dict[str, Any]:
    """Count a conversion for the job whose message its recipient clicked (within the job's click
    window) or received (within its delivery window): last touch. 201 when counted, 200 with the
    first answer when the event id was counted before."""
    answer = await run_in_threadpool(
        lambda: plane.conversions.record(
            event_id=event.event_id,
            link_code=event.link_code,
            job_id=event.job_id,
            msisdn=event.msisdn,
            message_id=event.message_id,
            operator=event.operator,
            value=event.value,
            currency=event.currency,
            occurred_at=event.occurred_at.timestamp() if event.occurred_at is not None else None,
        )
    )
    if answer["duplicate"]:
        response.status_code = 200
    return answer
