"""Last-touch attribution and money arithmetic: the rules a conversion is counted by."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from cluster.engagement.conversions import Touches, attribute
from ulak.money import from_micros, micros

DAY = 86400.0


def _attr(at: float, touches: Touches) -> tuple[str, float] | None:
    return attribute(at, touches, click_window=7 * DAY, delivery_window=DAY)


def test_a_click_within_its_window_wins_over_the_delivery() -> None:
    touches = Touches(first_click=1000.0, last_click=5000.0, delivered=900.0)
    assert _attr(5000.0 + 7 * DAY, touches) == ("click", 5000.0)
    assert _attr(5000.0 + 7 * DAY + 1, touches) is None  # and the delivery is older still
    assert _attr(950.0, Touches(delivered=900.0)) == ("delivery", 900.0)
    assert _attr(900.0 + DAY + 1, Touches(delivered=900.0)) is None


def test_a_touch_after_the_conversion_never_counts() -> None:
    assert _attr(800.0, Touches(first_click=1000.0, last_click=1000.0, delivered=900.0)) is None
    # Between the first and the last click: measured from the first, which certainly came before.
    assert _attr(2000.0, Touches(first_click=1000.0, last_click=3000.0)) == ("click", 1000.0)
    # Clicked before delivery was recorded (a receipt may come late): the click still counts.
    assert _attr(1500.0, Touches(first_click=1000.0, last_click=1000.0, delivered=2000.0)) == (
        "click",
        1000.0,
    )


@given(
    at=st.floats(0, 1e9),
    click=st.none() | st.floats(0, 1e9),
    delivered=st.none() | st.floats(0, 1e9),
    click_days=st.floats(0, 30),
    delivery_days=st.floats(0, 30),
)
def test_attribution_names_a_touch_before_the_conversion_and_within_its_window(
    at: float, click: float | None, delivered: float | None, click_days: float, delivery_days: float
) -> None:
    touches = Touches(first_click=click, last_click=click, delivered=delivered)
    found = attribute(at, touches, click_window=click_days * DAY, delivery_window=delivery_days * DAY)
    click_ok = click is not None and click <= at and at - click <= click_days * DAY
    delivery_ok = delivered is not None and delivered <= at and at - delivered <= delivery_days * DAY
    if click_ok:
        assert found == ("click", click)
    elif delivery_ok:
        assert found == ("delivery", delivered)
    else:
        assert found is None


@given(st.decimals(min_value=0, max_value=Decimal("1e12"), places=6, allow_nan=False))
def test_values_survive_the_round_trip_through_millionths(value: Decimal) -> None:
    assert from_micros(micros(value)) == value
    assert micros(value) == int(value * 1_000_000)


def test_sums_of_millionths_are_exact() -> None:
    assert from_micros(sum(micros(Decimal("0.1")) for _ in range(10))) == Decimal(1)
    assert str(from_micros(micros(Decimal("100.50")))) == "100.5"
    assert str(from_micros(0)) == "0"
    assert [str(from_micros(micros(Decimal(v)))) for v in ("100", "1E+3", "2.50")] == ["100", "1000", "2.5"]
