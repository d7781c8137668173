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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ulak.dispatch.learning import RateLearner


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
    """At most ``rate`` PDUs in any ``window``-second span, shared by every caller.

    With *pace* (seconds), tokens are also paced: no more than ``rate × pace`` at once, then at
    ``rate`` a second (a token bucket on top of the window). A bind's own cap is paced: sent in one
    burst, a second's worth went out in a tenth of a second and then nothing for nine tenths, which
    an SMSC counting in shorter slices, or pacing itself, refuses; and what it accepted "over the
    last second" then said nothing of its limit (``ulak.dispatch.learning``)."""

    def __init__(
        self,
        rate: float,
        *,
        window: float = 1.0,
        margin: float = 0.002,
        pace: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.window = window
        self.margin = margin
        self.pace = pace
        self._clock = clock
        self._bucket = 0.0  # paced tokens ready (only with pace)
        self._filled_at = clock()
        self._ledger: dict[int, _Charge] = {}
        # Charges by end, to expire them without scanning the ledger (uncapped, binds lease hundreds
        # of times a second): a settled charge's end only moves earlier, so it is pushed again and
        # its older, later entry finds it gone.
        self._ends: list[tuple[float, int]] = []
        self._total = 0  # tokens charged in the ledger
        self._next_id = 1
        self.set_rate(rate)
        self._bucket = self._burst  # the first lease goes at once

    def set_rate(self, rate: float) -> None:
        """Change the cap (operator config reload); leases already granted stay valid."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._capacity = int(rate * self.window)
        self._burst = max(1.0, rate * self.pace) if self.pace is not None else 0.0

    def _paced(self, now: float) -> float:
        """Paced tokens ready at *now* (refilled at ``rate`` up to the burst)."""
        self._bucket = min(self._burst, self._bucket + (now - self._filled_at) * self.rate)
        self._filled_at = now
        return self._bucket

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

    def now(self) -> float:
        return self._clock()

    def available(self) -> int:
        return max(0, self._capacity - self._charged(self._clock()))

    def acquire(self, want: int, *, hold: float = 0.05) -> Lease:
        """Lease up to *want* tokens to spend within *hold* seconds (none: wait ``retry_after``)."""
        if want < 1:
            raise ValueError("want at least one token")
        now = self._clock()
        free = self._capacity - self._charged(now)
        tokens = min(want, free)
        if self.pace is not None and tokens > 0:
            tokens = min(tokens, int(self._paced(now)))
            if tokens <= 0:
                return Lease(0, 0, hold, retry_after=max(0.001, (1.0 - self._bucket) / self.rate))
            self._bucket -= tokens
        if tokens <= 0:
            return Lease(0, 0, hold, retry_after=self._retry_after(now))
        return Lease(self._charge(now, now + hold, tokens), tokens, hold)

    def _charge(self, start: float, end: float, tokens: int) -> int:
        """Put a charge in the ledger; returns its lease id."""
        lease_id = self._next_id
        self._next_id += 1
        self._ledger[lease_id] = _Charge(start, end, tokens)
        heapq.heappush(self._ends, (end, lease_id))
        self._total += tokens
        return lease_id

    def _release(self, lease_id: int, charge: _Charge) -> None:
        del self._ledger[lease_id]
        self._total -= charge.tokens

    def assume_full(self) -> None:
        """Count the last window as full: a limiter that starts again (its actor restarted) does not
        know what its previous life granted, and those leases may still be spent. Granting a fresh
        second at once sent over the cap (issue 14, item 12); this costs at most one second."""
        now = self._clock()
        self._charge(now, now, self._capacity)

    def shrink(self, lease_id: int, tokens: int) -> None:
        """Take back all but *tokens* of a lease not spent yet (another limit granted fewer)."""
        charge = self._ledger.get(lease_id)
        if charge is None or tokens >= charge.tokens:
            return
        if self.pace is not None:  # never spent: paced again at once
            self._bucket = min(self._burst, self._bucket + charge.tokens - max(0, tokens))
        if tokens <= 0:
            self._release(lease_id, charge)
            return
        self._total -= charge.tokens - tokens
        charge.tokens = tokens

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
            self._release(lease_id, charge)
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


# A bind's own cap goes out in slices of this many seconds' worth (see SlidingWindowLimiter).
PACE = 0.05
LEARNED_FLOOR = 0.05  # the lowest a learned rate goes, as a share of the declared cap…
LEARNED_FLOOR_MAX = 10.0  # …and in parts a second


class TokenSource(Protocol):
    """A limiter as a bind sees it (a local object, or a Ray actor handle behind an adapter)."""

    def settle(self, lease_id: int, *, used: int, last_sent_after: float | None) -> Awaitable[None]: ...

    def exchange(self, settlement: Settlement | None, want: int, *, hold: float) -> Awaitable[Lease]: ...


class BothLimits:
    """A bind's own cap and its operator's account cap, both held at once.

    Operators state limits as their SMSCs enforce them: per bind ("4 binds × 100 TPS", each counted
    over its own sliding second), and often per account too (all binds of a system_id together). A
    bind that kept only the account's cap took more than its share early in a second and was then
    throttled for the rest of it (issue 14: 10,963 ESME_RTHROTTLED for 46,234 parts, every bind at
    half its contract).

    Each lease is taken first from the bind's own limiter (in the bind's process: no actor call),
    then, for as many tokens as that granted, from the operator's shared one; what the shared one
    refuses goes back to the own one at once, and a settlement settles both. Both count the same
    way (from the grant until the last PDU was answered, plus a window), so neither cap is exceeded,
    whichever is the tighter at the moment. With ``shared=None`` (the binds' own caps add up to no
    more than the account's, so it can never be the tighter) the bind never calls the shared one.
    Lease ids are the own limiter's.

    With a *learner* (``ulak.dispatch.learning``), the own cap is the rate the bind learned from the
    SMSC's "slow down" answers, set before each lease; the learner is told whether that cap is what
    held the bind back (it granted fewer tokens than the bind wanted), so that it probes upward only
    when more speed would be used."""

    def __init__(
        self, own: SlidingWindowLimiter, shared: TokenSource | None, learner: RateLearner | None = None
    ) -> None:
        self.own = own
        self.shared = shared
        self.learner = learner
        self._held = False  # the own cap held the bind back over the last window
        self._refused_at = -1e9  # when the own cap last granted less than was asked
        self._shared_of: dict[int, int] = {}  # own lease id → the shared limiter's lease id

    def _settle_own(self, settlement: Settlement) -> Settlement | None:
        """Settle *settlement* here; the same settlement for the shared limiter (None if it has none)."""
        self.own.settle(settlement.lease_id, used=settlement.used, last_sent_after=settlement.last_sent_after)
        shared_id = self._shared_of.pop(settlement.lease_id, None)
        if shared_id is None:
            return None
        return Settlement(shared_id, settlement.used, settlement.last_sent_after)

    async def settle(self, lease_id: int, *, used: int, last_sent_after: float | None) -> None:
        forward = self._settle_own(Settlement(lease_id, used, last_sent_after))
        if forward is not None and self.shared is not None:
            await self.shared.settle(forward.lease_id, used=used, last_sent_after=last_sent_after)

    async def exchange(self, settlement: Settlement | None, want: int, *, hold: float) -> Lease:
        forward = self._settle_own(settlement) if settlement is not None else None
        if self.learner is not None:
            rate = self.learner.held_back(self._held)
            if rate != self.own.rate:
                self.own.set_rate(rate)
        own = self.own.acquire(want, hold=hold)
        if self.learner is not None:
            # Held back by the own cap if it refused any of a lease within the last window: a bind
            # at its cap alternates between full leases and refused ones.
            now = self.own.now()
            if own.tokens < want:
                self._refused_at = now
            self._held = now - self._refused_at < self.own.window
        if self.shared is None:
            return own
        if not own.tokens:
            if forward is not None:
                await self.shared.settle(
                    forward.lease_id, used=forward.used, last_sent_after=forward.last_sent_after
                )
            return own
        try:
            shared = await self.shared.exchange(forward, own.tokens, hold=hold)
        except BaseException:
            self.own.shrink(own.lease_id, 0)
            raise
        if shared.tokens < own.tokens:
            self.own.shrink(own.lease_id, shared.tokens)
        if not shared.tokens:
            return Lease(0, 0, hold, retry_after=shared.retry_after)
        self._shared_of[own.lease_id] = shared.lease_id
        return Lease(own.lease_id, shared.tokens, min(own.hold, shared.hold))


def limits_for(
    bind_tps: float | None,
    *,
    account_tps: float,
    bind_caps: list[float | None],
    shared: TokenSource,
    learner: RateLearner | None = None,
) -> TokenSource:
    """What a bind spends: its own cap and the account's (see :class:`BothLimits`); the operator's
    *shared* limiter alone when the bind has no cap of its own and learns none.

    With a *learner* the own cap is the learned rate, whether or not one was declared: the account's
    shared limiter is still asked unless every bind declared a cap and they fit in the account's."""
    if bind_tps is None and learner is None:
        return shared
    independent = (
        bind_tps is not None
        and all(c is not None for c in bind_caps)
        and sum(c or 0.0 for c in bind_caps) <= account_tps
    )
    own = SlidingWindowLimiter(learner.rate if learner is not None else bind_tps or account_tps, pace=PACE)
    return BothLimits(own, None if independent else shared, learner)


def learner_for(bind_tps: float | None, *, account_tps: float, binds: int) -> RateLearner:
    """A bind's learner: it never exceeds what was declared (its own cap, else the account's) and
    starts there, or, with only the account's cap declared, at its share of it (the shared limiter
    would give it no more while every bind is busy; it probes upward when it is held back)."""
    ceiling = min(bind_tps, account_tps) if bind_tps is not None else account_tps
    # Never below a twentieth of it (10/s at most: an operator "uncapped" at millions a second must
    # still be able to learn a real SMSC's few dozen): an SMSC that answers "slow down" at random,
    # whatever the rate, slows a bind to a crawl, not to a halt.
    floor = max(1.0, min(ceiling * LEARNED_FLOOR, LEARNED_FLOOR_MAX))
    if bind_tps is not None:
        return RateLearner(ceiling, floor=floor)
    return RateLearner(account_tps, start=account_tps / max(1, binds), floor=floor)


class LocalTokenSource:
    """A limiter in this process, behind the async interface binds use (the Ray actor has the same)."""

    def __init__(self, limiter: SlidingWindowLimiter) -> None:
        self.limiter = limiter

    async def settle(self, lease_id: int, *, used: int, last_sent_after: float | None) -> None:
        self.limiter.settle(lease_id, used=used, last_sent_after=last_sent_after)

    async def exchange(self, settlement: Settlement | None, want: int, *, hold: float) -> Lease:
        return self.limiter.exchange(settlement, want, hold=hold)
