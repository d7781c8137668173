"""/v1/webhooks: each endpoint's queue and dead letters, and replaying them."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import Key, Plane, WriteKey
from api.errors import ApiError
from api.schemas import ErrorBody
from cluster import webhooks
from ulak import keys

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
_ID = re.compile(r"^[0-9a-f]{16}$")


def _known(plane: Any, endpoint: str) -> None:
    if not _ID.match(endpoint) or not plane.client.sismember(keys.WEBHOOK_ENDPOINTS, endpoint):
        raise ApiError(
            404, "webhook_not_found", f"no webhook endpoint {endpoint[:40]!r}: GET /v1/webhooks lists them"
        )


@router.get("", responses={401: {"model": ErrorBody}})
async def list_endpoints(plane: Plane, key: Key) -> dict[str, Any]:
    """Every endpoint webhooks go to: its URL, deliveries queued, delivered, dead-lettered, and its
    last error. An endpoint that is down holds up only its own queue."""
    return {"endpoints": await run_in_threadpool(webhooks.endpoints, plane.client)}


@router.get("/{endpoint}/dead", responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}})
async def list_dead(endpoint: str, plane: Plane, key: Key) -> dict[str, Any]:
    """The endpoint's deliveries that failed every attempt, oldest first, with the last error."""

    def read() -> dict[str, Any]:
        _known(plane, endpoint)
        return {"endpoint": endpoint, "dead": webhooks.dead_letters(plane.client, endpoint, limit=1000)}

    return await run_in_threadpool(read)


@router.post(
    "/{endpoint}/replay",
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
async def replay(endpoint: str, plane: Plane, key: WriteKey) -> dict[str, Any]:
    """Put the endpoint's dead letters back at the end of its queue, in order (its receiver up
    again); they are delivered as any queued delivery is."""

    def run() -> dict[str, Any]:
        _known(plane, endpoint)
        return {"endpoint": endpoint, "replayed": webhooks.replay(plane.client, endpoint)}

    return await run_in_threadpool(run)
