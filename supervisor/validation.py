"""Operator input checks for tenant fields: each failure names the offending value."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from shared.stars import parse_packages

SLUG_RE = re.compile(r"^[a-z0-9-]{3,32}$")
TOKEN_RE = re.compile(r"^(\d{5,16}):[A-Za-z0-9_-]{35}$")


class InputError(ValueError):
    """Bad operator input; the message is safe to print (never contains a secret)."""


def parse_slug(value: str) -> str:
    if not SLUG_RE.match(value):
        raise InputError(f"slug {value!r} must be 3-32 characters of a-z, 0-9 and '-'")
    return value


def parse_admin_ids(csv: str) -> list[int]:
    """Parse ``"111, 222,333"``; an empty string means no admins."""
    if not csv.strip():
        return []
    ids: list[int] = []
    for raw in csv.split(","):
        item = raw.strip()
        if not item.isdigit() or len(item) > 15 or int(item) == 0:
            raise InputError(f"admin id {item!r} in {csv!r} is not a Telegram user id (a positive number)")
        if int(item) not in ids:
            ids.append(int(item))
    return ids


def parse_bot_token(value: str) -> tuple[str, int]:
    """Return the token and the bot id encoded in it; the error never echoes the token."""
    token = value.strip()
    match = TOKEN_RE.match(token)
    if not match:
        raise InputError("bot token has the wrong shape: expected <digits>:<35 characters> as given by @BotFather")
    return token, int(match.group(1))


def parse_markup(value: str) -> Decimal:
    try:
        markup = Decimal(value)
    except InvalidOperation:
        raise InputError(f"markup {value!r} is not a number") from None
    if not markup.is_finite() or markup < 1 or markup > 100:
        raise InputError(f"markup {value!r} must be between 1 and 100")
    return markup


def parse_display_name(value: str) -> str:
    name = value.strip()
    if not 1 <= len(name) <= 128:
        raise InputError("display name must be 1-128 characters")
    return name


def parse_kie_key(value: str) -> str:
    key = value.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{16,256}", key):
        raise InputError("KIE API key has the wrong shape: expected 16-256 letters, digits, '_', '-' or '.'")
    return key


# "default" puts a tenant back on the platform's STARS_PACKAGES / STARS_RATE_MINOR.
DEFAULT = "default"
MAX_STARS_RATE_MINOR = 1_000_000


def parse_stars_packages(value: str) -> tuple[int, ...]:
    """A tenant's Stars packages; () for "default"."""
    if value.strip() == DEFAULT:
        return ()
    try:
        return parse_packages(value)
    except ValueError as exc:
        raise InputError(f"stars packages {value!r}: {exc}") from None


def parse_stars_rate(value: str) -> int:
    """Minor units credited per Star; 0 for "default"."""
    raw = value.strip()
    if raw == DEFAULT:
        return 0
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_STARS_RATE_MINOR:
        raise InputError(
            f"stars rate {value!r} must be a whole number of minor units from 1 to {MAX_STARS_RATE_MINOR}, or 'default'"
        )
    return int(raw)
