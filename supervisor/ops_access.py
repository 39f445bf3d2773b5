"""Who may see the operator pages: the bearer token, the session cookie the sign-in form sets, and
the per-address throttle on wrong tokens. The rules themselves are stated in supervisor.ops; kept
here, apart from the pages, because every page under /status/ asks the same question."""

from __future__ import annotations

import hashlib
import hmac
import time
from enum import Enum

from aiohttp import web

from shared import strict
from shared.settings import Settings
from supervisor.throttle import FailureThrottle, client_address

__all__ = [
    "COOKIE_NAME",
    "SESSION_SECONDS",
    "Access",
    "bearer",
    "credential",
    "decide",
    "same",
    "session_cookie",
    "valid_session",
]

COOKIE_NAME = "tgsup_status"
SESSION_SECONDS = 12 * 3600
MAX_CREDENTIAL_CHARS = 512
SESSION_MAC_CHARS = 64
EXPIRY_DIGITS = 12


class Access(Enum):
    GRANTED = "granted"
    OPEN = "open"  # development without OPERATOR_TOKEN
    DENIED = "denied"
    DISABLED = "disabled"  # production without OPERATOR_TOKEN
    THROTTLED = "throttled"  # too many wrong tokens from this address


def credential(value: str) -> str | None:
    """A token as sent, if it has the shape of one (the settings refuse any other shape)."""
    return strict.token(value, alphabet=strict.PRINTABLE, max_len=MAX_CREDENTIAL_CHARS)


def bearer(request: web.Request) -> str | None:
    """The bearer token, "" for an Authorization header that is not a well-formed one, None without."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credential(value.strip()) or ""


def same(given: str, expected: str) -> bool:
    # Both are printable ASCII by now (`credential`, the settings' validator): encoding cannot fail.
    return hmac.compare_digest(given.encode(), expected.encode())


def session_cookie(secret: str, expires: int) -> str:
    """The cookie's value: never the token, only a MAC keyed by it (changing the token revokes it)."""
    mac = hmac.new(secret.encode(), f"status-session:{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def valid_session(cookie: str, secret: str) -> bool:
    raw_expires, _, raw_mac = cookie.partition(".")
    expires = strict.uint(raw_expires, max_digits=EXPIRY_DIGITS)
    mac = strict.token(raw_mac, alphabet=strict.HEX, min_len=SESSION_MAC_CHARS, max_len=SESSION_MAC_CHARS)
    if expires is None or mac is None or expires < time.time():
        return False
    return same(f"{expires}.{mac}", session_cookie(secret, expires))


def decide(request: web.Request, settings: Settings, throttle: FailureThrottle) -> Access:
    """The access decision for one request to an operator page; a wrong bearer token counts as a failure."""
    token = settings.operator_token
    if token is None:
        return Access.OPEN if settings.env == "development" else Access.DISABLED
    secret = token.get_secret_value()
    given = bearer(request)
    if given is not None:
        address = client_address(request)
        if throttle.retry_after(address) is not None:
            return Access.THROTTLED
        if given and same(given, secret):
            return Access.GRANTED
        throttle.failed(address)
        return Access.DENIED
    cookie = request.cookies.get(COOKIE_NAME)
    return Access.GRANTED if cookie is not None and valid_session(cookie, secret) else Access.DENIED
