"""What a generation costs the user, in minor units (kopecks), and how money is written out.

The price shown on a button and the amount reserved come from the same `user_price` call, so the two
cannot disagree. Arithmetic is exact Decimal; anything that would round raises instead.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, Inexact, localcontext

from tenant_runtime.config import Language

# Currency → symbol; all of these have two minor digits.
_SYMBOLS = {"RUB": "₽", "USD": "$", "EUR": "€"}


def _require_decimal(name: str, value: Decimal) -> None:
    if not isinstance(value, Decimal):
        raise TypeError(
            f"{name} must be a Decimal, not {type(value).__name__} (read JSON prices with parse_float=Decimal)"
        )
    if not value.is_finite():
        raise ValueError(f"{name} must be finite, got {value}")


def user_price(credits: Decimal, markup: Decimal, rate_minor_per_credit: Decimal) -> int:
    """ceil(credits × markup × rate) minor units; a free model (0 credits) costs 0."""
    _require_decimal("credits", credits)
    _require_decimal("markup", markup)
    _require_decimal("rate_minor_per_credit", rate_minor_per_credit)
    if credits < 0:
        raise ValueError(f"credits must not be negative, got {credits}")
    if markup <= 0 or rate_minor_per_credit <= 0:
        raise ValueError("markup and rate must be positive")
    if credits == 0:
        return 0
    with localcontext() as ctx:
        # Enough digits for the exact product; the trap turns any silent rounding into an error.
        digits = sum(len(v.as_tuple().digits) for v in (credits, markup, rate_minor_per_credit))
        ctx.prec = max(ctx.prec, digits)
        ctx.traps[Inexact] = True
        exact = credits * markup * rate_minor_per_credit
        return int(exact.to_integral_value(rounding=ROUND_CEILING))


def format_money(minor: int, currency: str = "RUB", lang: Language = "ru") -> str:
    """ru: "1 234,50 ₽", "12 ₽"; en: "₽1,234.50", "₽12". Whole amounts drop the kopecks."""
    symbol = _SYMBOLS.get(currency)
    if symbol is None:
        raise ValueError(f"unsupported currency {currency!r}")
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), 100)
    grouped = f"{units:,}"
    if lang == "ru":
        number = grouped.replace(",", " ") + (f",{cents:02d}" if cents else "")
        return f"{sign}{number} {symbol}"
    number = grouped + (f".{cents:02d}" if cents else "")
    return f"{sign}{symbol}{number}"
