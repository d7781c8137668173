"""/v1/operators: each operator's cap and binds, as the binds describe themselves."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import Key, Plane
from api.schemas import BindView, OperatorView
from cluster.send.pool import operator_state
from ulak.settings import OperatorConfig

router = APIRouter(prefix="/v1/operators", tags=["operators"])


@router.get("", response_model=list[OperatorView])
def list_operators(plane: Plane, key: Key) -> list[OperatorView]:
    """Each operator's state (up, degraded, down, and why), and its binds: state (bound, reconnecting,
    throttled, …), node, window use and totals."""
    binds = plane.binds()
    return [_view(op, binds[op.name]) for op in plane.settings.operators]


def _view(op: OperatorConfig, described: list[dict[str, Any]]) -> OperatorView:
    state, reason = operator_state(described)
    return OperatorView(
        name=op.name,
        tps=op.tps,
        price_per_part=str(op.price_per_part),
        state=state,
        reason=reason,
        binds=[
            BindView.model_validate({**b, "in_flight": len(b.get("in_flight", [])), "tps": config.tps})
            for b, config in zip(described, op.binds, strict=True)
        ],
    )
