"""/v1/operators: each operator's cap and binds, as the binds describe themselves."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Key, Plane
from api.schemas import BindView, OperatorView

router = APIRouter(prefix="/v1/operators", tags=["operators"])


@router.get("", response_model=list[OperatorView])
def list_operators(plane: Plane, key: Key) -> list[OperatorView]:
    """Binds and their state (bound, reconnecting, throttled), window use and totals."""
    binds = plane.binds()
    return [
        OperatorView(
            name=op.name,
            tps=op.tps,
            binds=[
                BindView.model_validate({**b, "in_flight": len(b.get("in_flight", [])), "tps": config.tps})
                for b, config in zip(binds[op.name], op.binds, strict=True)
            ],
        )
        for op in plane.settings.operators
    ]
