"""/healthz (the process answers), /readyz (Redis, Ray and the binds), /metrics (Prometheus)."""

from __future__ import annotations

from typing import Any

import ray
import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import Plane, open_to
from api.schemas import Health
from ulak.dispatch.bindstate import UP, BindState

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz", response_model=Health, responses={503: {"model": Health}}, dependencies=[open_to("readyz")]
)
def readyz(plane: Plane) -> Any:
    """200 when Redis and Ray answer and every operator has a bound bind; 503 (with what is wrong)
    otherwise."""
    checks: dict[str, Any] = {}
    try:
        plane.client.ping()
        checks["redis"] = "ok"
    except redis.RedisError as exc:
        checks["redis"] = f"unreachable: {exc}"
    checks["ray"] = "ok" if ray.is_initialized() else "not connected"
    binds = plane.binds() if checks["ray"] == "ok" else {}
    checks["operators"] = {
        name: {b["bind"]: b.get("state", BindState.MISSING.value) for b in rows}
        for name, rows in binds.items()
    }
    ready = (
        checks["redis"] == "ok"
        and checks["ray"] == "ok"
        and all(any(b.get("state") in UP for b in rows) for rows in binds.values())
    )
    health = Health(status="ready" if ready else "not_ready", checks=checks)
    return health if ready else JSONResponse(health.model_dump(), status_code=503)


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[open_to("metrics")],
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request) -> Response:
    """Prometheus text (``api.metrics``): jobs by state, active jobs' messages and parts, every bind's
    state, window use and totals (0x58 answers, reconnects, receipts, MO), throttle waits, receipt
    latency, replies, webhook queues and dead letters, ingest rows and time."""
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
