"""Promo code parts as the operator and admins write them (issue 17, item 3): what is accepted, and every
bad input named in the issue refused with the part it concerns."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenant_runtime.promo.codes import (
    MAX_AMOUNT_MINOR,
    PromoField,
    PromoInputError,
    PromoSpec,
    parse_admin_line,
    parse_amount,
    parse_code,
    parse_expiry,
    parse_max_uses,
)

CODE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


@given(st.text(alphabet=CODE_CHARS, min_size=3, max_size=32))
def test_codes_are_read_in_upper_case(code: str) -> None:
    assert parse_code(f"  {code} ") == code.upper()


@pytest.mark.parametrize(
    "code", ["with space", "🎁GIFT", "GIFT🎁", "x" * 200, "ab", "", "Привет", "CODE!", "a\tb", "ＣＯＤＥ", "CO\nDE"]
)
def test_bad_codes_are_refused(code: str) -> None:
    with pytest.raises(PromoInputError) as refused:
        parse_code(code)
    assert refused.value.field is PromoField.CODE


@given(st.text(max_size=64))
def test_any_text_is_a_code_or_a_code_error(text: str) -> None:
    try:
        code = parse_code(text)
    except PromoInputError as exc:
        assert exc.field is PromoField.CODE
        return
    assert code.isascii() and 3 <= len(code) <= 32 and code == code.upper()


@given(st.integers(1, MAX_AMOUNT_MINOR))
def test_amounts_round_trip_in_minor_units(minor: int) -> None:
    major = Decimal(minor) / 100
    assert parse_amount(f"{major:.2f}") == minor
    assert parse_amount(f"{major:.2f}".replace(".", ",")) == minor


@pytest.mark.parametrize("amount", ["0", "0.00", "-5", "1.005", "1e3", "abc", "", "10000000.01", "NaN", "1 000"])
def test_bad_amounts_are_refused(amount: str) -> None:
    with pytest.raises(PromoInputError) as refused:
        parse_amount(amount)
    assert refused.value.field is PromoField.AMOUNT


@pytest.mark.parametrize("uses", ["0", "-1", "1.5", "many", "", "1000001"])
def test_bad_max_uses_are_refused(uses: str) -> None:
    with pytest.raises(PromoInputError) as refused:
        parse_max_uses(uses)
    assert refused.value.field is PromoField.MAX_USES


@pytest.mark.parametrize("day", ["2027-02-30", "31.01.2027", "2027/01/31", "tomorrow", "", "2027-1-31"])
def test_bad_dates_are_refused(day: str) -> None:
    with pytest.raises(PromoInputError) as refused:
        parse_expiry(day)
    assert refused.value.field is PromoField.EXPIRES


def test_admin_lines() -> None:
    assert parse_admin_line("spring 100 50 2027-01-31") == PromoSpec("SPRING", 10_000, None, 50, date(2027, 1, 31))
    assert parse_admin_line("FREE5 5gen 20") == PromoSpec("FREE5", None, 5, 20, None)
    assert parse_admin_line("Free5 5ГЕН 20") == PromoSpec("FREE5", None, 5, 20, None)
    assert parse_admin_line("HALF 99,5 3") == PromoSpec("HALF", 9_950, None, 3, None)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("SPRING", PromoField.FORMAT),
        ("SPRING 100", PromoField.FORMAT),
        ("A B C D E", PromoField.FORMAT),
        ("🎁 100 5", PromoField.CODE),
        ("SPRING 0 5", PromoField.AMOUNT),
        ("SPRING 0gen 5", PromoField.FREE_GENERATIONS),
        ("SPRING 100 0", PromoField.MAX_USES),
        ("SPRING 100 5 31.01.2027", PromoField.EXPIRES),
    ],
)
def test_bad_admin_lines_name_the_part(line: str, field: PromoField) -> None:
    with pytest.raises(PromoInputError) as refused:
        parse_admin_line(line)
    assert refused.value.field is field


def test_a_code_has_exactly_one_value() -> None:
    for amount, generations in ((None, None), (100, 5)):
        with pytest.raises(PromoInputError) as refused:
            PromoSpec("BOTH", amount, generations, 1, None)
        assert refused.value.field is PromoField.VALUE
