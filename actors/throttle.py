"""ThrottleActor: one per operator, the shared holder of its speed limit (see ulak.dispatch.throttle)."""

from __future__ import annotations

from typing import Any

import ray

from ulak.dispatch.throttle import Lease, Settlement, SlidingWindowLimiter


class ThrottleActor:
    """Leases PDU tokens to the operator's binds, wherever in the cluster they run."""

    def __init__(self, operator: str, rate: float, *, restarted: bool | None = None) -> None:
        self.operator = operator
        self.limiter = SlidingWindowLimiter(rate)
        if restarted is None:
            restarted = ray.get_runtime_context().was_current_actor_reconstructed
        if restarted:  # its previous life's leases may still be spent: no fresh second at once
            self.limiter.assume_full()
        self.restarted = restarted
        self.leases = 0
        self.waits = 0  # leases refused for now (no token left in the sliding second): the bind waits

    def acquire(self, want: int, hold: float) -> Lease:
        lease = self.limiter.acquire(want, hold=hold)
        self.leases += 1
        if not lease.tokens:
            self.waits += 1
        return lease

    def settle(self, lease_id: int, used: int, last_sent_after: float | None) -> None:
        self.limiter.settle(lease_id, used=used, last_sent_after=last_sent_after)

    def exchange(self, settlement: Settlement | None, want: int, hold: float) -> Lease:
        """Settle the bind's last lease and lease again, in one actor call."""
        if settlement is not None:
            self.settle(settlement.lease_id, settlement.used, settlement.last_sent_after)
        return self.acquire(want, hold)

    def set_rate(self, rate: float) -> None:
        self.limiter.set_rate(rate)

    def describe(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "rate": self.limiter.rate,
            "available": self.limiter.available(),
            "leases": self.leases,
            "waits": self.waits,
            "restarted": self.restarted,
        }


class RayTokenSource:
    """What a bind needs of the limiter (``ulak.dispatch.bind.TokenSource``), over a ThrottleActor handle."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def settle(self, lease_id: int, *, used: int, last_sent_after: float | None) -> None:
        await self.handle.settle.remote(lease_id, used, last_sent_after)

    async def exchange(self, settlement: Settlement | None, want: int, *, hold: float) -> Lease:
        lease: Lease = await self.handle.exchange.remote(settlement, want, hold)
        return lease
