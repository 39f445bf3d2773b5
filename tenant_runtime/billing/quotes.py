"""What a model costs a tenant's user: the one function that both shows and charges prices."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from shared.registry import ModelSpec
from tenant_runtime.billing.pricing import user_price


def quote(spec: ModelSpec, params: Mapping[str, object], markup: Decimal, rate: Decimal) -> int | None:
    """Minor units for these parameters; None when the model has no price for them (not sellable)."""
    if spec.free:
        return 0
    credits = spec.price_credits(params)
    if credits is None:
        return None
    return user_price(credits, markup, rate)


def cheapest(spec: ModelSpec, markup: Decimal, rate: Decimal) -> tuple[int, bool] | None:
    """(lowest price, whether it varies with the parameters) for catalog listings."""
    if spec.free:
        return 0, False
    if not spec.prices:
        return None
    prices = {user_price(mode.credits, markup, rate) for mode in spec.prices}
    return min(prices), len(prices) > 1
