"""Files users send (photos, audio, video) as URLs a model can fetch, without exposing the bot token.

Telegram's file URLs embed the bot token, so KIE gets `PUBLIC_BASE_URL/media/<slug>/<token>`
instead; the token names the Telegram file, carries an expiry, and is signed with the tenant's
secret. The supervisor serves it by downloading the file through the tenant's bot.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

from shared import strict

TOKEN_TTL_SECONDS = 24 * 3600  # longer than any generation; after that the link is dead
MAC_CHARS = 24  # 18 bytes of HMAC-SHA256 in URL-safe base64
MAX_ENCODED_FILE_ID = 1024  # Telegram file ids are under 200 characters
EXPIRY_DIGITS = 12


def _mac(secret: str, tenant_id: int, file_id: str, expires: int) -> str:
    digest = hmac.new(secret.encode(), f"media:{tenant_id}:{file_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def media_token(secret: str, tenant_id: int, file_id: str, *, now: float | None = None) -> str:
    expires = int((now or time.time()) + TOKEN_TTL_SECONDS)
    encoded = base64.urlsafe_b64encode(file_id.encode()).decode().rstrip("=")
    return f"{encoded}.{expires}.{_mac(secret, tenant_id, file_id, expires)}"


def read_media_token(secret: str, tenant_id: int, token: str, *, now: float | None = None) -> str | None:
    """The Telegram file id, or None when the token is malformed, forged, for another tenant, or expired.

    Every part is checked for shape (ASCII, bounded) before it is decoded, converted or compared."""
    encoded_part, _, rest = token.partition(".")
    expires_part, _, mac_part = rest.partition(".")
    encoded = strict.token(encoded_part, alphabet=strict.URLSAFE, max_len=MAX_ENCODED_FILE_ID)
    expires = strict.uint(expires_part, max_digits=EXPIRY_DIGITS)
    mac = strict.token(mac_part, alphabet=strict.URLSAFE, min_len=MAC_CHARS, max_len=MAC_CHARS)
    if encoded is None or expires is None or mac is None or expires < (now or time.time()):
        return None
    try:
        file_id = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return file_id if hmac.compare_digest(mac, _mac(secret, tenant_id, file_id, expires)) else None


def media_url(public_base_url: str | None, slug: str, secret: str, tenant_id: int, file_id: str) -> str | None:
    if not public_base_url:
        return None
    return f"{public_base_url}/media/{slug}/{media_token(secret, tenant_id, file_id)}"
