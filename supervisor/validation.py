"""Operator input checks for tenant fields: each failure names the offending value."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from shared import strict
from shared.stars import parse_packages
from tenant_runtime.limits.shop_limits import FREE_DAILY_MAX, MAX_OPEN_JOBS_MAX, RATE_LIMIT_MAX

# A letter or digit first: a slug starting with "-" reads as an option to every command that takes one.
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{2,31}")
TOKEN_RE = re.compile(r"([0-9]{5,16}):[A-Za-z0-9_-]{35}")
TELEGRAM_ID_DIGITS = 15  # user ids are below 2**52


class InputError(ValueError):
    """Bad operator input; the message is safe to print (never contains a secret)."""


def parse_slug(value: str) -> str:
    # fullmatch: `$` would let a trailing newline through.
    if not SLUG_RE.fullmatch(value):
        raise InputError(f"slug {value!r} must be 3-32 characters of a-z, 0-9 and '-', starting with a letter or digit")
    return value


def parse_admin_ids(csv: str) -> list[int]:
    """Parse ``"111, 222,333"``; an empty string means no admins."""
    if not csv.strip():
        return []
    ids: list[int] = []
    for raw in csv.split(","):
        item = raw.strip()
        admin = strict.uint(item, max_digits=TELEGRAM_ID_DIGITS)
        if not admin:
            raise InputError(f"admin id {item!r} in {csv!r} is not a Telegram user id (a positive number)")
        if admin not in ids:
            ids.append(admin)
    return ids


def parse_bot_token(value: str) -> tuple[str, int]:
    """Return the token and the bot id encoded in it; the error never echoes the token."""
    token = value.strip()
    match = TOKEN_RE.fullmatch(token)
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
    rate = strict.uint(raw, max_digits=len(str(MAX_STARS_RATE_MINOR)))
    if rate is None or not 1 <= rate <= MAX_STARS_RATE_MINOR:
        raise InputError(
            f"stars rate {value!r} must be a whole number of minor units from 1 to {MAX_STARS_RATE_MINOR}, or 'default'"
        )
    return rate


# --- limits (tenant_runtime.limits.shop_limits) ---------------------------------------------------------

_RATE_RE = re.compile(r"([0-9]{1,6})\s*(?:/\s*min)?", re.IGNORECASE)
_TIMEZONE_RE = re.compile(r"[A-Za-z0-9_+/-]{1,64}")


def _whole(value: str, what: str, low: int, high: int, hint: str = "") -> int:
    number = strict.uint(value.strip(), max_digits=len(str(high)) + 1)
    if number is None or not low <= number <= high:
        raise InputError(f"{what} {value!r} must be a whole number from {low} to {high}{hint}")
    return number


def parse_free_daily(value: str) -> int:
    """Free generations per user per day; 0 switches free generations off."""
    return _whole(value, "--free-daily", 0, FREE_DAILY_MAX, " (0 switches free generations off)")


def parse_max_open_jobs(value: str) -> int:
    return _whole(value, "--max-open-jobs", 1, MAX_OPEN_JOBS_MAX)


def parse_rate_limit(value: str) -> int:
    """Messages and taps per user per minute, written `30/min` (or `30`)."""
    match = _RATE_RE.fullmatch(value.strip())
    number = int(match.group(1)) if match else None
    if number is None or not 1 <= number <= RATE_LIMIT_MAX:
        raise InputError(f"--rate-limit {value!r} must look like 30/min: 1 to {RATE_LIMIT_MAX} messages a minute")
    return number


def parse_timezone(value: str) -> str:
    """An IANA zone name's shape; whether Postgres knows it is checked when it is saved."""
    name = value.strip()
    if not _TIMEZONE_RE.fullmatch(name) or name.startswith("/") or ".." in name:
        raise InputError(f"--timezone {value!r} is not a time zone name such as Europe/Moscow")
    return name
