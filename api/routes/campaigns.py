"""/v1/campaigns: the recent campaigns side by side, for comparing them (the web manager's page)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.deps import Key, Plane
from api.schemas import CampaignList, ErrorBody

router = APIRouter(tags=["jobs"])
_ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody}}


@router.get("/v1/campaigns", response_model=CampaignList, responses=_ERRORS)
async def campaigns(plane: Plane, key: Key, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> CampaignList:
    """The last *limit* campaigns (previews left out), newest first, each with its summary's
    figures: sent, delivered, delivery, click and conversion rates, value, cost and ROI, in total,
    per operator and per variant, and a survey's NPS. An ended job's figures are kept and read again
    only when its counters moved; a running job's are its counters' (``final: false``: no cost, ROI,
    operators or variants until it ends; ``cluster.reports.campaigns``)."""
    found = await run_in_threadpool(plane.campaigns, limit=limit)
    return CampaignList(campaigns=found)
