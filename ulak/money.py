"""Money as integers: values are counted in millionths of a currency unit, so that Redis sums them
exactly (``HINCRBY``) and no float drift creeps into a campaign's value or ROI."""

from __future__ import annotations

from decimal import Decimal

MICRO = 1_000_000


def micros(value: Decimal) -> int:
    """*value* in millionths (rounded to the nearest; the API takes at most six decimals)."""
    return int(value.scaleb(6).to_integral_value())


def from_micros(value: int) -> Decimal:
    """Millionths back to a Decimal, without trailing zeros (``12500000`` -> ``12.5``)."""
    exact = Decimal(value).scaleb(-6)
    return exact.quantize(Decimal(1)) if exact == exact.to_integral_value() else exact.normalize()
