"""The rate a bind may send at, learned from the SMSC's "slow down" answers.

An operator's real limits are often not what the contract says: per bind where only the account's was
declared, a fixed second where a sliding one was assumed, lowered while the SMSC is busy. A bind that
only paused after ESME_RTHROTTLED and went on at the declared speed drew a storm of them and ran at
half its real limit (issue 31: 12,704 of 46k parts answered 0x58, utilisation 0.50).

:class:`RateLearner` keeps the bind's rate the way TCP CUBIC keeps a congestion window, in PDUs a
second rather than bytes in flight:

* **decrease** on "slow down" (0x58 or 0x14), at most once per window (the answers to one burst come
  together): the rate where it was throttled is remembered as ``w_max`` (no more than what the SMSC
  actually accepted over the last second: our limiter charges conservatively, so what went through is
  the better estimate of the limit), and the rate drops to ``beta × w_max``;
* **increase** along ``w_max × (1 + c·(t − K)³)``: back to ``w_max`` fast, a plateau around it (where
  the limit probably is, so few probes over it), then faster and faster beyond it, so that a limit
  raised again (the SMSC relents) is found within seconds. *t* counts only the time the bind was held
  back by this rate (it had more to send): an idle bind learns nothing and does not creep upward;
* never above the ``ceiling`` (the declared cap: a learned rate never exceeds what was declared) nor
  below the ``floor``.

With the defaults (beta 0.95, c 0.006) a bind returns to the limit it was throttled at in ~2 s and
doubles beyond it in another ~5.5 s; held at a fixed limit it probes over it every few seconds
(beta 0.9 took ~2.6 s back and followed a restored limit more slowly: BENCHMARKS.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

BETA = 0.95
CUBIC = 0.006
QUIET = 1.0  # seconds after a decrease in which further "slow down" answers belong to the same burst
MAX_STEP = 0.5  # seconds of growth one observation may add (a bind idle meanwhile did not probe)


class RateLearner:
    """See the module docstring."""

    def __init__(
        self,
        ceiling: float,
        *,
        start: float | None = None,
        floor: float = 1.0,
        beta: float = BETA,
        cubic: float = CUBIC,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ceiling <= 0:
            raise ValueError("ceiling must be positive")
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.beta, self.cubic = beta, cubic
        self._clock = clock
        self.rate = max(self.floor, min(ceiling, start if start is not None else ceiling))
        self._w_max: float | None = None  # the rate of the last decrease (None: never throttled)
        self._k = 0.0  # seconds of growth from the last decrease back to w_max
        self._grown = 0.0  # seconds of growth since the last decrease
        self._last_decrease = -math.inf
        self._last_seen = clock()
        self.decreases = 0

    @property
    def learned(self) -> bool:
        """Whether the SMSC ever slowed this bind down (else the rate is what it started at)."""
        return self.decreases > 0

    def throttled(self, *, accepted_last_second: int) -> bool:
        """The SMSC answered "slow down"; *accepted_last_second* is how many PDUs it accepted from
        this bind over the last second. Returns whether the rate was lowered (once per burst)."""
        now = self._clock()
        if now - self._last_decrease < QUIET:
            return False
        # What the SMSC accepted over the last second is the better estimate of its limit (our own
        # limiter charges conservatively), but one decrease halves the rate at most: a bind that had
        # just paused accepted little and says nothing of the limit.
        w_max = min(self.rate, max(float(accepted_last_second), self.rate / 2))
        self._w_max = w_max
        self.rate = max(self.floor, self.beta * w_max)
        self._k = math.cbrt(max(0.0, w_max - self.rate) / (self.cubic * w_max))
        self._grown = 0.0
        self._last_decrease = now
        self._last_seen = now
        self.decreases += 1
        return True

    def held_back(self, held: bool) -> float:
        """Observe the bind: *held* says whether this rate (not an empty queue, not another limit) is
        what kept it from sending more since the last observation. Returns the rate to use now."""
        now = self._clock()
        step = min(MAX_STEP, max(0.0, now - self._last_seen))
        self._last_seen = now
        if held and self._w_max is not None and self.rate < self.ceiling:
            self._grown += step
            target = self._w_max * (1 + self.cubic * (self._grown - self._k) ** 3)
            self.rate = max(self.floor, min(self.ceiling, max(self.rate, target)))
        elif held and self.rate < self.ceiling:
            # Never throttled, started below the ceiling (a share of the account's cap): probe
            # upward from where it started, as if it had been throttled just above.
            self._w_max = self.rate
            self._k = 0.0
            self._grown = 0.0
        return self.rate


class AcceptCounter:
    """How many PDUs the SMSC accepted over about the last second, in tenths of a second: one
    integer add per answer on the receive path, read only when the SMSC says "slow down"."""

    __slots__ = ("_counts", "_stamps")

    def __init__(self) -> None:
        self._counts = [0] * 10
        self._stamps = [-1] * 10  # the tenth of a second each slot counts

    def add(self, now: float) -> None:
        tenth = int(now * 10)
        slot = tenth % 10
        if self._stamps[slot] != tenth:
            self._stamps[slot] = tenth
            self._counts[slot] = 0
        self._counts[slot] += 1

    def last_second(self, now: float) -> int:
        tenth = int(now * 10)
        return sum(c for c, s in zip(self._counts, self._stamps, strict=True) if tenth - s < 10)
