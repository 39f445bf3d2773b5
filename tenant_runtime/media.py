"""Files users send (photos, audio, video) as URLs a model can fetch, without exposing the bot token.

Telegram's file URLs embed the bot token, so KIE gets `PUBLIC_BASE_URL/media/<slug>/<token>`
instead; the token names the Telegram file, carries an expiry, and is signed with the tenant's
secret. The supervisor serves it by downloading the file through the tenant's bot.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

TOKEN_TTL_SECONDS = 24 * 3600  # longer than any generation; after that the link is dead


def _mac(secret: str, tenant_id: int, file_id: str, expires: int) -> str:
    digest = hmac.new(secret.encode(), f"media:{tenant_id}:{file_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def media_token(secret: str, tenant_id: int, file_id: str, *, now: float | None = None) -> str:
    expires = int((now or time.time()) + TOKEN_TTL_SECONDS)
    encoded = base64.urlsafe_b64encode(file_id.encode()).decode().rstrip("=")
    return f"{encoded}.{expires}.{_mac(secret, tenant_id, file_id, expires)}"


def read_media_token(secret: str, tenant_id: int, token: str, *, now: float | None = None) -> str | None:
    """The Telegram file id, or None when the token is forged, for another tenant, or expired."""
    encoded, _, rest = token.partition(".")
    expires_text, _, mac = rest.partition(".")
    if not expires_text.isdigit() or int(expires_text) < (now or time.time()):
        return None
    try:
        file_id = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return file_id if hmac.compare_digest(mac, _mac(secret, tenant_id, file_id, int(expires_text))) else None


def media_url(public_base_url: str | None, slug: str, secret: str, tenant_id: int, file_id: str) -> str | None:
    if not public_base_url:
        return None
    return f"{public_base_url}/media/{slug}/{media_token(secret, tenant_id, file_id)}"
