"""An operator's speed limit, counted in PDUs and shared by all its binds through leases.

The SMSC counts PDUs over a *sliding* one-second window and answers ESME_RTHROTTLED past its cap, so a
token bucket (which allows a burst on top of its rate) is not enough. :class:`SlidingWindowLimiter`
keeps a ledger of leases instead. A lease grants a bind some tokens to spend within ``hold`` seconds;
the ledger charges them from the grant until the SMSC answered the last PDU of the lease (by then it
has counted them all), plus the window and a small margin. A new lease is granted only while the
charged total stays within the cap, so no one-second window anywhere can see more than ``rate`` PDUs,
whichever binds send them.

Why leases: a bind asks for ~50 ms of tokens at a time, so the limiter (one Ray actor per operator) is
called tens of times a second rather than once per PDU. Unused tokens come back with
:meth:`SlidingWindowLimiter.settle`, which also reports *when* the last PDU was answered, as an offset from
the moment the lease arrived: offsets are measured on one clock, so binds on other nodes never compare
their clocks with the limiter's.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Lease:
    """Tokens a bind may spend, each on one PDU, before ``hold`` seconds have passed since it arrived."""

    lease_id: int
    tokens: int
    hold: float
    retry_after: float = 0.0  # when tokens == 0: how long to wait before asking again


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a bind spent of a lease (see :meth:`SlidingWindowLimiter.settle`)."""

    lease_id: int
    used: int
    last_sent_after: float | None


@dataclass(slots=True)
class _Charge:
    start: float
    end: float  # the latest moment a PDU of this lease may have been sent
    tokens: int


class SlidingWindowLimiter:
    """At most ``rate`` PDUs in any ``window``-second span, shared by every caller."""

    def __init__(
        self,
        rate: float,
        *,
        window: float = 1.0,
        margin: float = 0.002,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.window = window
        self.margin = margin
        self._clock = clock
        self._ledger: dict[int, _Charge] = {}
        # Charges by end, to expire them without scanning the ledger (uncapped, binds lease hundreds
        # of times a second): a settled charge's end only moves earlier, so it is pushed again and
        # its older, later entry finds it gone.
        self._ends: list[tuple[float, int]] = []
        self._total = 0  # tokens charged in the ledger
        self._next_id = 1
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        """Change the cap (operator config reload); leases already granted stay valid."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._capacity = int(rate * self.window)

    def _charged(self, now: float) -> int:
        horizon = now - self.window - self.margin
        ends, ledger = self._ends, self._ledger
        while ends and ends[0][0] <= horizon:
            _, lease_id = heapq.heappop(ends)
            charge = ledger.get(lease_id)
            if charge is not None and charge.end <= horizon:
                del ledger[lease_id]
                self._total -= charge.tokens
        return self._total

    def available(self) -> int:
        return max(0, self._capacity - self._charged(self._clock()))

    def acquire(self, want: int, *, hold: float = 0.05) -> Lease:
        """Lease up to *want* tokens to spend within *hold* seconds (none: wait ``retry_after``)."""
        if want < 1:
            raise ValueError("want at least one token")
        now = self._clock()
        free = self._capacity - self._charged(now)
        tokens = min(want, free)
        if tokens <= 0:
            return Lease(0, 0, hold, retry_after=self._retry_after(now))
        lease_id = self._next_id
        self._next_id += 1
        self._ledger[lease_id] = _Charge(now, now + hold, tokens)
        heapq.heappush(self._ends, (now + hold, lease_id))
        self._total += tokens
        return Lease(lease_id, tokens, hold)

    def settle(self, lease_id: int, *, used: int, last_sent_after: float | None) -> None:
        """Report what a lease spent: *used* tokens, the last one *last_sent_after* seconds after it
        arrived (binds report when the SMSC answered it: the latest it can have counted it).

        Unused tokens return to the pool at once; the used ones stay charged until a window after
        that moment, even past the hold while the charge still counts. Settling an unknown or already
        expired lease is harmless.
        """
        charge = self._ledger.get(lease_id)
        if charge is None:
            return
        if used <= 0 or last_sent_after is None:
            del self._ledger[lease_id]
            self._total -= charge.tokens
            return
        kept = min(used, charge.tokens)
        self._total -= charge.tokens - kept
        charge.tokens = kept
        # Earlier than the hold (the usual case) frees the tokens sooner; later (the SMSC answered
        # the lease's last PDU after the hold) keeps them longer: safe while the charge still
        # counts, since nothing was granted on the strength of its expiry.
        end = charge.start + max(0.0, last_sent_after)
        if end != charge.end:
            charge.end = end
            heapq.heappush(self._ends, (end, lease_id))

    def exchange(self, settlement: Settlement | None, want: int, *, hold: float = 0.05) -> Lease:
        """Settle the previous lease (if any) and lease again: one call where a busy bind made two."""
        if settlement is not None:
            self.settle(settlement.lease_id, used=settlement.used, last_sent_after=settlement.last_sent_after)
        return self.acquire(want, hold=hold)

    def _retry_after(self, now: float) -> float:
        # The earliest moment a charge falls out of the window and frees tokens.
        horizon = self.window + self.margin
        if not self._ledger:
            return 0.0
        return max(0.001, min(c.end for c in self._ledger.values()) + horizon - now)


class LocalTokenSource:
    """A limiter in this process, behind the async interface binds use (the Ray actor has the same)."""

    def __init__(self, limiter: SlidingWindowLimiter) -> None:
        self.limiter = limiter

    async def settle(self, lease_id: int, *, used: int, last_sent_after: float | None) -> None:
        self.limiter.settle(lease_id, used=used, last_sent_after=last_sent_after)

    async def exchange(self, settlement: Settlement | None, want: int, *, hold: float) -> Lease:
        return self.limiter.exchange(settlement, want, hold=hold)
