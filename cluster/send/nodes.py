"""What the live Ray nodes offer the binds: which of them may hold an operator's binds (the ones
offering its ``node_resource``), their addresses, and whether a bind holds anything (free to move)."""

from __future__ import annotations

from typing import Any

import ray

from ulak.settings import OperatorConfig


def holds_nothing(described: dict[str, Any]) -> bool:
    """A bind that holds nothing: no part queued, staged or on the wire, no job's parts."""
    return not (
        described.get("queued")
        or described.get("staged")
        or described.get("jobs")
        or "SubmitSm" in (described.get("in_flight") or [])
    )


def spread_over(op: OperatorConfig) -> list[str]:
    """The live nodes *op*'s binds are spread over, in a fixed order: those offering its binds'
    ``node_resource``. Empty when there is nothing to spread: ``placement: pack``, no resource named,
    or fewer than two such nodes (Ray places the binds then)."""
    resource = next((b.node_resource for b in op.binds if b.node_resource), None)
    if op.placement != "spread" or resource is None:
        return []
    nodes = sorted(nodes_offering(resource))
    return nodes if len(nodes) >= 2 else []


def nodes_offering(resource: str) -> list[str]:
    """The live nodes that offer *resource*, by id."""
    return [
        str(n["NodeID"])
        for n in ray.nodes()  # type: ignore[no-untyped-call]
        if n.get("Alive") and n.get("Resources", {}).get(resource, 0) > 0
    ]


def node_addresses() -> dict[str, str]:
    """Every node's address by id (what ``/v1/operators`` shows beside each bind)."""
    try:
        return {str(n["NodeID"]): str(n.get("NodeManagerAddress", "")) for n in ray.nodes()}  # type: ignore[no-untyped-call]
    except Exception:
        return {}


def offered(resource: str) -> float:
    """How much of a custom resource the cluster's live nodes offer (0: no node can hold it)."""
    offered: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return offered.get(resource, 0.0)
