"""/healthz (the process answers), /readyz (Redis, Ray and the binds), /metrics (Prometheus)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray
import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from api.deps import Plane, open_to
from api.schemas import BIND_DOWN, Health
from cluster import replies
from cluster.jobs import ACTIVE, JobState

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
        name: {b["bind"]: b.get("state", "missing") for b in rows} for name, rows in binds.items()
    }
    ready = (
        checks["redis"] == "ok"
        and checks["ray"] == "ok"
        and all(any(b.get("state") in ("bound", "throttled") for b in rows) for rows in binds.values())
    )
    health = Health(status="ready" if ready else "not_ready", checks=checks)
    return health if ready else JSONResponse(health.model_dump(), status_code=503)


def _line(name: str, labels: dict[str, str], value: float) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}} {value:g}" if inner else f"{name} {value:g}"


@router.get("/metrics", response_class=PlainTextResponse, dependencies=[open_to("metrics")])
def metrics(plane: Plane) -> str:
    """Prometheus text: jobs by state, active jobs' messages by state, binds' state and totals."""
    out: list[str] = []
    ids = plane.store.ids(limit=1000)
    by_state = dict.fromkeys((s.value for s in JobState), 0)
    active = []
    for job_id in ids:
        state = plane.store.state(job_id)
        by_state[state.value] += 1
        if state in ACTIVE:
            active.append(job_id)
    out += ["# HELP ulak_jobs Jobs by state (the latest 1000).", "# TYPE ulak_jobs gauge"]
    out += [_line("ulak_jobs", {"state": s}, n) for s, n in by_state.items()]
    out += ["# HELP ulak_job_messages Messages of active jobs by state.", "# TYPE ulak_job_messages gauge"]
    for job_id in active:
        counts = plane.store.view(job_id)["counts"]
        out += [_line("ulak_job_messages", {"job": job_id, "state": k}, v) for k, v in counts.items()]
    gauges: dict[str, tuple[str, Callable[[dict[str, Any]], float]]] = {
        "ulak_bind_up": (
            "1 when the bind is bound",
            lambda b: float(b.get("state") in ("bound", "throttled")),
        ),
        "ulak_bind_in_flight": (
            "PDUs awaiting a response (window use)",
            lambda b: len(b.get("in_flight", [])),
        ),
        "ulak_bind_failed": (
            "1 when the bind is failed (an unexpected error, see its last_error and the log) or refused "
            "(the SMSC refused its credentials)",
            lambda b: float(b.get("state") in BIND_DOWN),
        ),
        "ulak_bind_window": ("the bind's window", lambda b: b["window"]),
        "ulak_bind_queued": ("parts queued in the bind", lambda b: b.get("queued", 0)),
    }
    totals = {
        "ulak_bind_submitted_total": "submit_sm written",
        "ulak_bind_throttled_total": "ESME_RTHROTTLED / ESME_RMSGQFUL answers",
        "ulak_bind_receipts_total": "delivery receipts received",
        "ulak_bind_disconnects_total": "connections lost",
        "ulak_bind_connects_total": "connections made (reconnects = connects - 1)",
        "ulak_bind_failures_total": "unexpected errors in the send loop (logged with a traceback)",
        "ulak_bind_binds_refused_total": "bind requests the SMSC refused",
        "ulak_bind_limiter_errors_total": "failed calls to the operator's limiter (retried)",
    }
    binds = plane.binds()
    for name, (help_text, get) in gauges.items():
        out += [f"# HELP {name} {help_text}.", f"# TYPE {name} gauge"]
        out += [
            _line(name, {"operator": op, "bind": b["bind"]}, get(b))
            for op, rows in binds.items()
            for b in rows
        ]
    for name, help_text in totals.items():
        field = name.removeprefix("ulak_bind_").removesuffix("_total")
        out += [f"# HELP {name} {help_text}.", f"# TYPE {name} counter"]
        out += [
            _line(name, {"operator": op, "bind": b["bind"]}, b.get(field, 0))
            for op, rows in binds.items()
            for b in rows
        ]
    throttles = plane.throttles()
    for name, field, kind, help_text in (
        ("ulak_throttle_rate", "rate", "gauge", "the operator's cap in parts per second"),
        ("ulak_throttle_leases_total", "leases", "counter", "token leases asked for by the binds"),
        ("ulak_throttle_waits_total", "waits", "counter", "leases refused for now: a bind had to wait"),
    ):
        out += [f"# HELP {name} {help_text}.", f"# TYPE {name} {kind}"]
        out += [_line(name, {"operator": op}, t[field]) for op, t in throttles.items() if field in t]
    latency = plane.receipt_latency()
    name = "ulak_receipt_latency_seconds"
    out += [f"# HELP {name} From a part's submit_sm_resp to its final receipt.", f"# TYPE {name} histogram"]
    cumulative = 0.0
    for le in (*LATENCY_BUCKETS, "+Inf"):
        cumulative += latency.get(le, 0.0)
        out.append(_line(f"{name}_bucket", {"le": le}, cumulative))
    out += [_line(f"{name}_sum", {}, latency.get("sum", 0.0)), _line(f"{name}_count", {}, cumulative)]
    mo = replies.counts(plane.client)
    name = "ulak_replies_total"
    out += [
        f"# HELP {name} Replies (MO) written, by what they meant (optout, optin, reply).",
        f"# TYPE {name} counter",
    ]
    out += [_line(name, {"kind": k}, mo[k]) for k in ("optout", "optin", "answer", "reply")]
    for field, help_text in (
        ("parts", "MO parts the binds made durable and the processor put together"),
        ("incomplete", "concatenated replies kept without all their parts (replies.concat_timeout)"),
        ("duplicate", "MO parts the SMSC sent again (counted once)"),
    ):
        out += [f"# HELP ulak_reply_{field}_total {help_text}.", f"# TYPE ulak_reply_{field}_total counter"]
        out.append(_line(f"ulak_reply_{field}_total", {}, mo[field]))
    name = "ulak_bind_mo_total"
    out += [f"# HELP {name} MO deliver_sm read by the bind.", f"# TYPE {name} counter"]
    out += [
        _line(name, {"operator": op, "bind": b["bind"]}, b.get("mo", 0))
        for op, rows in binds.items()
        for b in rows
    ]
    return "\n".join(out) + "\n"


# The ledger script's buckets (ulak/dispatch/ledger.lua), in seconds.
LATENCY_BUCKETS = ("1", "5", "15", "60", "300", "1800", "3600", "21600", "86400")
