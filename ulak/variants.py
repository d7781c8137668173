"""A/B tests: which variant of a campaign each recipient gets, and whether one did better.

**The split.** A recipient's variant is a function of its number and the job's seed alone: the
number (E.164 digits as an unsigned integer) mixed with the seed by SplitMix64, taken as a fraction of
2⁶⁴, against the variants' cumulative weights. So the same seed splits the same numbers the same way
in every run and on every node, with no state, and shares converge on the weights (a hash this good
is as even as random draws). A *holdout* share, when asked for, comes first in [0, 1): those
recipients are kept unsent, and their conversions measure what the campaign added.

**The comparison.** For each variant against the best other one: a two-proportion z-test of the
difference in click or conversion rate, and the probability that each variant is the best one, from
Beta(1 + successes, 1 + failures) posteriors sampled with a fixed seed (the same data give the same
answer). Sans-IO: numpy only.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

HOLDOUT = "holdout"  # the name the held-out recipients go by (a variant may not take it)
REST = "rest"  # test then winner: the recipients who get the winning variant once it is known
_TEST_SALT = 0x5DEECE66D2B1F3A7  # a second, independent draw decides test slice or rest
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def seed_of(text: str) -> int:
    """A 64-bit seed from any text (the job's ``split_seed``, or its id)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def fractions(numbers: np.ndarray[Any, Any], seed: int) -> np.ndarray[Any, Any]:
    """Each number's place in [0, 1) under *seed* (SplitMix64 of number ⊕ seed; 53 bits kept)."""
    with np.errstate(over="ignore"):  # wrapping is the point
        z = np.asarray(numbers, dtype=np.uint64) ^ np.uint64(seed)
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True)
class Split:
    """How a job's recipients are split: *names* with *weights*, after a *holdout* share; with a
    *test_share* below 1, only that share of the rest is split among the variants (the test slice),
    and the others are ``rest``: they get the winner."""

    names: tuple[str, ...]
    weights: tuple[float, ...]
    seed: int
    holdout: float = 0.0
    test_share: float = 1.0

    @property
    def labels(self) -> tuple[str, ...]:
        """What :meth:`assign`'s indices stand for: the variants, ``rest`` and ``holdout`` when the
        split has them."""
        rest = (REST,) if self.test_share < 1 else ()
        return (*self.names, *rest, *((HOLDOUT,) if self.holdout > 0 else ()))

    def held(self, assigned: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Which of the :meth:`assign`-ed are held out."""
        if self.holdout <= 0:
            return np.zeros(len(assigned), dtype=bool)
        return np.asarray(assigned == len(self.labels) - 1)

    @property
    def rest_index(self) -> int:
        """The index of ``rest`` in :attr:`labels` (-1: no test slice)."""
        return len(self.names) if self.test_share < 1 else -1

    def assign(self, numbers: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Per number, its index in :attr:`labels`."""
        u = fractions(numbers, self.seed)
        out = np.empty(len(u), dtype=np.int8)
        held = u < self.holdout
        rest = (u - self.holdout) / (1 - self.holdout)
        bounds = np.cumsum(np.asarray(self.weights, dtype=np.float64))
        bounds /= bounds[-1]
        out[:] = np.minimum(np.searchsorted(bounds, rest, side="right"), len(self.names) - 1)
        if self.test_share < 1:
            out[fractions(numbers, self.seed ^ _TEST_SALT) >= self.test_share] = self.rest_index
        if self.holdout > 0:
            out[held] = len(self.labels) - 1
        return out


# ------------------------------------------------------------------------------ the comparison


def two_proportion_p(successes: Sequence[int], trials: Sequence[int]) -> float | None:
    """Two-sided p-value of the z-test that two rates are equal (pooled); None without data."""
    (s1, s2), (n1, n2) = successes, trials
    if not n1 or not n2:
        return None
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (s1 / n1 - s2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


def probability_best(
    successes: Sequence[int], trials: Sequence[int], *, draws: int = 20_000, seed: int = 7
) -> list[float]:
    """Per variant, the posterior probability (Beta(1 + s, 1 + n − s) each) that its rate is the
    highest; the same data give the same answer (a fixed seed)."""
    rng = np.random.default_rng(seed)
    samples = np.stack(
        [rng.beta(1 + s, 1 + max(n - s, 0), size=draws) for s, n in zip(successes, trials, strict=True)]
    )
    best = np.bincount(samples.argmax(axis=0), minlength=len(successes))
    return [round(float(b) / draws, 4) for b in best]


def difference_interval(
    successes: Sequence[int], trials: Sequence[int], *, z: float = 1.959964
) -> tuple[float, float] | None:
    """A 95 % (Wald) interval for rate₁ − rate₂; None without data."""
    (s1, s2), (n1, n2) = successes, trials
    if not n1 or not n2:
        return None
    p1, p2 = s1 / n1, s2 / n2
    half = z * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return round(p1 - p2 - half, 6), round(p1 - p2 + half, 6)


def wilson(s: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of a rate of *s* in *n* (n > 0): unlike the
    Wald interval it stays inside 0..1 and is honest at 0 of 40 or 40 of 40."""
    p = s / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _interval(s: int, n: int) -> dict[str, float] | None:
    if not n:
        return None
    low, high = wilson(s, n)
    return {"rate": round(s / n, 6), "low": round(low, 6), "high": round(high, 6)}


def compare(
    names: Sequence[str], successes: Sequence[int], trials: Sequence[int], *, alpha: float = 0.05
) -> dict[str, Any]:
    """Which variant's rate is highest, the probability that each is the best, whether the
    leader's lead over the runner-up is significant at *alpha* (two-proportion z-test), and each
    variant's rate with its 95 % (Wilson) interval, to draw."""
    rates = [s / n if n else None for s, n in zip(successes, trials, strict=True)]
    order = sorted(range(len(names)), key=lambda i: rates[i] or 0.0, reverse=True)
    leader, runner_up = order[0], order[1]
    p = two_proportion_p([successes[leader], successes[runner_up]], [trials[leader], trials[runner_up]])
    return {
        "leader": names[leader] if rates[leader] else None,
        "p_value": round(p, 6) if p is not None else None,
        "significant": p is not None and p < alpha and bool(rates[leader]),
        "probability_best": dict(zip(names, probability_best(successes, trials), strict=True)),
        "intervals_95": {name: _interval(s, n) for name, s, n in zip(names, successes, trials, strict=True)},
    }
