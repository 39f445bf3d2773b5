"""What a promo code is and how its parts are read, from the operator's CLI and from an admin's message.

Every part is checked before anything is written; a bad one raises `PromoInputError` naming the part
(`PromoField`), which the CLI and the bot each word in their own way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum

__all__ = [
    "MAX_AMOUNT_MINOR",
    "MAX_FREE_GENERATIONS",
    "MAX_USES",
    "PromoField",
    "PromoInputError",
    "PromoSpec",
    "parse_admin_line",
    "parse_amount",
    "parse_code",
    "parse_expiry",
    "parse_free_generations",
    "parse_max_uses",
]

MAX_AMOUNT_MINOR = 100_000_000  # 1 000 000,00 in the tenant's currency
MAX_FREE_GENERATIONS = 1000
MAX_USES = 1_000_000
_CODE_RE = re.compile(r"[A-Za-z0-9_-]{3,32}")
_AMOUNT_RE = re.compile(r"[0-9]{1,7}(?:[.,][0-9]{1,2})?")
_WHOLE_RE = re.compile(r"[0-9]{1,7}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FREE_RE = re.compile(r"([0-9]{1,4})(?:gen|ген)", re.IGNORECASE)


class PromoField(StrEnum):
    CODE = "code"
    AMOUNT = "amount"
    FREE_GENERATIONS = "free_generations"
    VALUE = "value"  # neither or both of amount and free generations
    MAX_USES = "max_uses"
    EXPIRES = "expires"
    EXPIRED = "expired"  # a date that has already passed in the tenant's zone
    FORMAT = "format"  # an admin's line is not "CODE VALUE MAX [DATE]"
    EXISTS = "exists"  # the tenant has this code already


class PromoInputError(ValueError):
    def __init__(self, field: PromoField, value: str) -> None:
        super().__init__(f"{field}: {value!r}")
        self.field = field
        self.value = value


@dataclass(frozen=True)
class PromoSpec:
    code: str  # upper case
    amount_minor: int | None  # exactly one of amount_minor and free_generations
    free_generations: int | None
    max_uses: int
    expires_on: date | None  # valid through this day in the tenant's zone; None: no expiry

    def __post_init__(self) -> None:
        if (self.amount_minor is None) == (self.free_generations is None):
            raise PromoInputError(PromoField.VALUE, "")


def parse_code(raw: str) -> str:
    """3-32 letters, digits, '_' or '-'; codes are compared in upper case."""
    code = raw.strip()
    if not _CODE_RE.fullmatch(code) or not code.isascii():
        raise PromoInputError(PromoField.CODE, raw)
    return code.upper()


def parse_amount(raw: str) -> int:
    """Major units with up to two decimals ("100", "99.50", "99,5") → minor units."""
    text = raw.strip()
    if not _AMOUNT_RE.fullmatch(text):
        raise PromoInputError(PromoField.AMOUNT, raw)
    try:
        minor = Decimal(text.replace(",", ".")) * 100
    except InvalidOperation:
        raise PromoInputError(PromoField.AMOUNT, raw) from None
    if not 0 < minor <= MAX_AMOUNT_MINOR:
        raise PromoInputError(PromoField.AMOUNT, raw)
    return int(minor)


def _whole(raw: str, field: PromoField, high: int) -> int:
    text = raw.strip()
    number = int(text) if _WHOLE_RE.fullmatch(text) else 0
    if not 1 <= number <= high:
        raise PromoInputError(field, raw)
    return number


def parse_free_generations(raw: str) -> int:
    return _whole(raw, PromoField.FREE_GENERATIONS, MAX_FREE_GENERATIONS)


def parse_max_uses(raw: str) -> int:
    return _whole(raw, PromoField.MAX_USES, MAX_USES)


def parse_expiry(raw: str) -> date:
    """YYYY-MM-DD; whether it has passed is checked in the tenant's zone when the code is created."""
    text = raw.strip()
    if not _DATE_RE.fullmatch(text):
        raise PromoInputError(PromoField.EXPIRES, raw)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PromoInputError(PromoField.EXPIRES, raw) from None


def parse_admin_line(text: str) -> PromoSpec:
    """An admin's "CODE VALUE MAX_USES [YYYY-MM-DD]": VALUE is an amount ("100", "99.50") or free
    generations ("5gen", "5ген")."""
    parts = text.split()
    if not 3 <= len(parts) <= 4:
        raise PromoInputError(PromoField.FORMAT, text)
    code = parse_code(parts[0])
    free = _FREE_RE.fullmatch(parts[1])
    amount = None if free else parse_amount(parts[1])
    generations = parse_free_generations(free.group(1)) if free else None
    return PromoSpec(
        code=code,
        amount_minor=amount,
        free_generations=generations,
        max_uses=parse_max_uses(parts[2]),
        expires_on=parse_expiry(parts[3]) if len(parts) == 4 else None,
    )
