"""The A/B split and the comparison: reproducible, near the weights, and the statistics right."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ulak.variants import (
    HOLDOUT,
    REST,
    Split,
    compare,
    difference_interval,
    fractions,
    probability_best,
    two_proportion_p,
    wilson,
)

NUMBERS = np.arange(905300000000, 905300000000 + 200_000, dtype=np.uint64)


def test_the_same_seed_splits_the_same_numbers_the_same_way() -> None:
    split = Split(names=("A", "B"), weights=(1.0, 1.0), seed=42)
    first = split.assign(NUMBERS)
    assert np.array_equal(first, split.assign(NUMBERS))
    assert np.array_equal(first[::-1], split.assign(NUMBERS[::-1]))  # a row's own number decides
    other = Split(names=("A", "B"), weights=(1.0, 1.0), seed=43).assign(NUMBERS)
    assert 0.45 < np.mean(first != other) < 0.55  # another seed: an independent split


@settings(max_examples=30, deadline=None)
@given(
    weights=st.lists(st.floats(0.1, 10), min_size=2, max_size=5),
    holdout=st.sampled_from([0.0, 0.05, 0.2, 0.5]),
    seed=st.integers(0, 2**64 - 1),
)
def test_shares_are_within_tolerance_of_the_weights(weights: list[float], holdout: float, seed: int) -> None:
    names = tuple(f"v{i}" for i in range(len(weights)))
    split = Split(names=names, weights=tuple(weights), seed=seed, holdout=holdout)
    got = np.bincount(split.assign(NUMBERS), minlength=len(split.labels)) / len(NUMBERS)
    want = np.array(weights) / sum(weights) * (1 - holdout)
    if holdout:
        want = np.append(want, holdout)
        assert split.labels[-1] == HOLDOUT
    sd = np.sqrt(want * (1 - want) / len(NUMBERS))
    assert np.all(np.abs(got - want) < 6 * sd + 1e-9), (got, want)


def test_fractions_are_uniform() -> None:
    u = fractions(NUMBERS, 7)
    assert u.min() >= 0 and u.max() < 1
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    expected = len(u) / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 50  # 19 degrees of freedom: p < 1e-4 above 43


def test_two_proportion_test_and_interval_match_hand_computed_values() -> None:
    # 50/100 against 30/100: pooled 0.4, z = 0.2 / sqrt(0.4·0.6·0.02) = 2.887, p = 0.00389
    p = two_proportion_p([50, 30], [100, 100])
    assert p is not None and abs(p - 0.003892) < 1e-5
    assert two_proportion_p([5, 5], [100, 100]) == 1.0
    assert two_proportion_p([1, 0], [0, 10]) is None
    low, high = difference_interval([50, 30], [100, 100]) or (0, 0)
    assert abs((low + high) / 2 - 0.2) < 1e-9 and abs(high - low - 2 * 1.959964 * np.sqrt(0.0046)) < 1e-5


def test_probability_best_is_reproducible_and_sums_to_one() -> None:
    first = probability_best([60, 40, 50], [100, 100, 100])
    assert first == probability_best([60, 40, 50], [100, 100, 100])
    assert abs(sum(first) - 1) < 1e-3 and first[0] > first[2] > first[1]
    even = probability_best([50, 50], [100, 100])
    assert abs(even[0] - 0.5) < 0.02


def test_compare_names_the_leader_and_whether_its_lead_is_significant() -> None:
    clear = compare(["A", "B"], [600, 100], [1000, 1000])
    assert clear["leader"] == "A" and clear["significant"] is True
    close = compare(["A", "B"], [51, 50], [1000, 1000])
    assert close["significant"] is False
    nothing = compare(["A", "B"], [0, 0], [100, 100])
    assert nothing["leader"] is None and nothing["significant"] is False


def test_a_test_slice_takes_its_share_and_the_rest_waits_for_the_winner() -> None:
    split = Split(names=("A", "B"), weights=(1.0, 1.0), seed=9, holdout=0.1, test_share=0.2)
    assert split.labels == ("A", "B", REST, HOLDOUT) and split.rest_index == 2
    got = np.bincount(split.assign(NUMBERS), minlength=4) / len(NUMBERS)
    want = np.array([0.09, 0.09, 0.72, 0.1])  # the holdout first; of the others 20 % tested
    assert np.all(np.abs(got - want) < 6 * np.sqrt(want * (1 - want) / len(NUMBERS))), got
    held = split.held(split.assign(NUMBERS))
    assert np.array_equal(held, split.assign(NUMBERS) == 3)
    # The holdout is the same with or without a test slice: the same recipients are kept unsent.
    plain = Split(names=("A", "B"), weights=(1.0, 1.0), seed=9, holdout=0.1)
    assert np.array_equal(plain.held(plain.assign(NUMBERS)), held)


def test_each_variant_comes_with_its_wilson_interval() -> None:
    # Wilson 1927 / Newcombe 1998's example: 81 of 263 → 0.2553–0.3662.
    low, high = wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    found = compare(["A", "B", "C"], [81, 0, 5], [263, 40, 0])["intervals_95"]
    assert found["A"] == {"rate": round(81 / 263, 6), "low": round(low, 6), "high": round(high, 6)}
    assert found["B"]["rate"] == 0 and found["B"]["low"] == pytest.approx(0, abs=1e-9)
    assert found["B"]["high"] > 0.08  # 0 of 40 is not "surely 0"
    assert found["C"] is None  # nobody delivered: no rate to draw
