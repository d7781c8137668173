"""Frequency caps as configured (``ulak.caps``, ``FrequencyCapsConfig``); the script that applies
them is held to a model against a real Redis in ``tests/integration/test_caps.py``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ulak.caps import BRAND, COMMERCIAL, Cap, Rule, shard_of
from ulak.keys import CAP_SHARDS
from ulak.settings import FrequencyCapsConfig


@pytest.mark.parametrize(
    ("text", "count", "seconds"),
    [
        ("1/24h", 1, 86400),
        ("4/7d", 4, 604800),
        ("2/w", 2, 604800),
        ("3/90m", 3, 5400),
        (" 1 / 1D ", 1, 86400),
    ],
)
def test_a_cap_is_messages_per_window(text: str, count: int, seconds: int) -> None:
    assert Cap.parse(text) == Cap(count, seconds)


@pytest.mark.parametrize("text", ["1", "0/24h", "1/0h", "1/24", "x/1d", "1/400d", "-1/1d"])
def test_a_cap_that_means_nothing_is_refused_with_its_shape(text: str) -> None:
    with pytest.raises(ValueError, match="frequency cap"):
        Cap.parse(text)


def test_the_configuration_names_each_jobs_caps() -> None:
    config = FrequencyCapsConfig(commercial=("4/7d",), brands={"acme": ("1/24h",), "bolt": ("2/1h",)})
    assert config.commercial == ("4/7d",)  # kept as written
    assert config.longest() == 7 * 86400
    assert config.rules(brand="acme", commercial=True) == (
        Rule(BRAND, Cap(1, 86400)),
        Rule(COMMERCIAL, Cap(4, 7 * 86400)),
    )
    assert config.rules(brand="acme", commercial=False) == (Rule(BRAND, Cap(1, 86400)),)
    assert config.rules(brand=None, commercial=False) == ()
    assert config.rules(brand="zeta", commercial=True) == (Rule(COMMERCIAL, Cap(4, 7 * 86400)),)
    assert FrequencyCapsConfig().longest() == 0
    with pytest.raises(ValidationError, match="must look like 1/24h"):
        FrequencyCapsConfig(brands={"acme": ("daily",)})
    with pytest.raises(ValidationError, match="brand 'Acme Inc'"):
        FrequencyCapsConfig(brands={"Acme Inc": ("1/24h",)})


def test_numbers_spread_over_the_shards() -> None:
    shards = {shard_of(f"90532{i:07d}") for i in range(1000)}
    assert shards == set(range(CAP_SHARDS))


def test_one_shards_histories_share_a_slot() -> None:
    from redis.crc import key_slot

    from ulak import keys

    numbers = [n for n in (f"90532{i:07d}" for i in range(200)) if shard_of(n) == 3]
    assert len({key_slot(keys.cap_history(3, n).encode()) for n in numbers}) == 1
