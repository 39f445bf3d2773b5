"""Pricing: exact ceil(credits × markup × rate) in minor units, and how amounts are written."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenant_runtime.billing.pricing import format_money, user_price

credits_st = st.decimals(min_value=0, max_value=100_000, places=3, allow_nan=False, allow_infinity=False)
markups = st.decimals(min_value=Decimal("0.001"), max_value=1000, places=3, allow_nan=False, allow_infinity=False)
rates = st.decimals(min_value=Decimal("0.0001"), max_value=10_000, places=4, allow_nan=False, allow_infinity=False)


@given(credits_st, markups, rates)
def test_price_is_the_ceiling_of_the_exact_product(credits: Decimal, markup: Decimal, rate: Decimal) -> None:
    price = user_price(credits, markup, rate)
    exact = credits * markup * rate  # the strategies' digits fit the default 28-digit context exactly
    assert type(price) is int
    assert exact <= price < exact + 1


@given(credits_st, credits_st, markups, rates)
def test_price_is_monotonic_in_credits(a: Decimal, b: Decimal, markup: Decimal, rate: Decimal) -> None:
    low, high = sorted((a, b))
    assert user_price(low, markup, rate) <= user_price(high, markup, rate)


@given(credits_st, markups, markups, rates)
def test_price_is_monotonic_in_markup(credits: Decimal, a: Decimal, b: Decimal, rate: Decimal) -> None:
    low, high = sorted((a, b))
    assert user_price(credits, low, rate) <= user_price(credits, high, rate)


@given(markups, rates)
def test_free_models_cost_nothing(markup: Decimal, rate: Decimal) -> None:
    assert user_price(Decimal(0), markup, rate) == 0
    assert user_price(Decimal("0.000"), markup, rate) == 0


def test_examples() -> None:
    # 1 credit = 0.005 USD ≈ 45 kopecks; markup 2.0
    assert user_price(Decimal("14.14"), Decimal("2.0"), Decimal("45")) == 1273  # 1272.6 → up
    assert user_price(Decimal("4"), Decimal("2.5"), Decimal("45")) == 450  # exact stays exact
    assert user_price(Decimal("0.001"), Decimal("1"), Decimal("1")) == 1  # any cost is at least a kopeck


def test_many_digits_never_round_silently() -> None:
    # In the default 28-digit context this product rounds to exactly 100 and would undercharge.
    credits = Decimal("1." + "0" * 30 + "1")
    assert user_price(credits, Decimal(1), Decimal(100)) == 101


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        user_price(14.14, Decimal(2), Decimal(45))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        user_price(Decimal(1), 2.0, Decimal(45))  # type: ignore[arg-type]


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError):
        user_price(Decimal(-1), Decimal(2), Decimal(45))
    with pytest.raises(ValueError):
        user_price(Decimal(1), Decimal(0), Decimal(45))
    with pytest.raises(ValueError):
        user_price(Decimal("NaN"), Decimal(2), Decimal(45))


@pytest.mark.parametrize(
    ("minor", "lang", "currency", "text"),
    [
        (1240, "ru", "RUB", "12,40 ₽"),
        (0, "ru", "RUB", "0 ₽"),
        (1200, "ru", "RUB", "12 ₽"),
        (5, "ru", "RUB", "0,05 ₽"),
        (123456789, "ru", "RUB", "1 234 567,89 ₽"),
        (-1240, "ru", "RUB", "-12,40 ₽"),
        (1240, "en", "RUB", "₽12.40"),
        (0, "en", "RUB", "₽0"),
        (123456789, "en", "RUB", "₽1,234,567.89"),
        (-5, "en", "RUB", "-₽0.05"),
        (505, "en", "USD", "$5.05"),
        (505, "ru", "EUR", "5,05 €"),
    ],
)
def test_format_money(minor: int, lang: str, currency: str, text: str) -> None:
    assert format_money(minor, currency, lang) == text  # type: ignore[arg-type]


def test_format_money_defaults_to_roubles_in_russian() -> None:
    assert format_money(1240) == "12,40 ₽"


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="XTR"):
        format_money(100, "XTR")


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_formatting_round_trips(minor: int) -> None:
    text = format_money(minor, "RUB", "en").replace("₽", "").replace(",", "")
    assert Decimal(text) * 100 == minor
