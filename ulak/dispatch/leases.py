"""A bind's leases: the one it is spending, and the spent ones waiting to be settled.

A bind leases tokens from its operator's limiter (``ulak.dispatch.throttle``) and spends them as its
window frees up. This keeps the accounts of that, with no I/O and an injected clock:

* the lease in hand: its tokens, how many are used, when its last PDU went out, and until when it
  may be spent (well inside the hold: the limiter counts the hold from its own grant);
* offsets are counted from when the bind *asked* for the lease: the limiter charges from its grant,
  somewhere between the asking and the answer, so offsets from the asking can only overstate the
  charge, never understate it (from the answer they understated it by the call's latency);
* a spent lease is settled only once every PDU of it has been answered (``confirm``): the SMSC
  counts a PDU in its sliding second when it processes it, which can be well after it was sent but
  never after it was answered. Settled by send time alone, two leases a second apart by our clock
  landed in one of the SMSC's seconds (15 ESME_RTHROTTLED of 2,400 at a 300/s cap while it lagged).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ulak.dispatch.throttle import Lease, Settlement

# How much of a lease's hold the bind spends in: the rest is margin for the limiter's clock.
SPEND_FRACTION = 0.8


class LeaseMeter:
    """See the module docstring."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.lease: Lease | None = None
        self.used = 0
        self._last: float | None = None  # when its last PDU went out, after it was asked for
        self._asked = 0.0
        self.deadline = 0.0
        # Spent leases whose PDUs are not all answered yet: (lease id, used, asked at, last send).
        self._unconfirmed: deque[tuple[int, int, float, float]] = deque()
        self._ready: list[Settlement] = []  # for the next call to the limiter

    def begin(self, lease: Lease, *, asked: float) -> None:
        """*lease* is in hand (asked for at *asked*, on this clock)."""
        self.lease, self.used, self._last, self._asked = lease, 0, None, asked
        self.deadline = self._clock() + SPEND_FRACTION * lease.hold

    @property
    def left(self) -> int:
        """Tokens of the lease in hand not spent yet (0 without one)."""
        return self.lease.tokens - self.used if self.lease is not None else 0

    def live(self, now: float) -> bool:
        """Whether the lease in hand may still be spent at *now*."""
        return self.lease is not None and now < self.deadline

    def spent(self, n: int) -> None:
        """*n* PDUs of the lease in hand just went out."""
        if n:
            self.used += n
            self._last = self._clock() - self._asked

    def end(self) -> None:
        """The lease in hand is done with (spent, expired, or nothing left to send): a lease never
        used is settled at once, a used one when its PDUs are answered (``confirm``)."""
        lease, self.lease = self.lease, None
        if lease is None:
            return
        if not self.used or self._last is None:
            self._ready.append(Settlement(lease.lease_id, 0, None))
            return
        self._unconfirmed.append((lease.lease_id, self.used, self._asked, self._asked + self._last))

    @property
    def unconfirmed(self) -> bool:
        return bool(self._unconfirmed)

    def confirm(self, *, oldest_unanswered: float | None, last_answer: float) -> None:
        """Make ready the spent leases none of whose PDUs is still unanswered: the oldest PDU in
        flight went out at *oldest_unanswered* (None: nothing in flight); the last answer came at
        *last_answer*, which is when the SMSC had them all."""
        while self._unconfirmed:
            lease_id, used, asked, last_sent = self._unconfirmed[0]
            if oldest_unanswered is not None and oldest_unanswered <= last_sent:
                return  # a PDU of this lease is still unanswered
            self._unconfirmed.popleft()
            self._ready.append(Settlement(lease_id, used, max(last_sent, last_answer) - asked))

    def next_settlement(self) -> Settlement | None:
        """The settlement to send with the next request for a lease."""
        return self._ready.pop(0) if self._ready else None

    def keep(self, settlement: Settlement) -> None:
        """A settlement taken and not sent after all: first again."""
        self._ready.insert(0, settlement)

    def take_ready(self) -> list[Settlement]:
        """Every settlement ready, to send on their own."""
        ready, self._ready = self._ready, []
        return ready

    def drop(self) -> None:
        """Forget the lease in hand unsettled (the send loop failed: it expires at the limiter)."""
        self.lease = None
