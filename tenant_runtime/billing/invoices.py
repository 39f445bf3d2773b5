"""Telegram Stars invoice payloads: signed, so pre_checkout can trust tenant, user and price.

The payload travels through the user's client and comes back in pre_checkout_query and
successful_payment; an HMAC stops anyone from paying 1 Star for a 1000 ₽ top-up or crediting someone
else. Format (ASCII, at most 128 bytes as Telegram requires):

    v1.<tenant_id>.<user_id>.<stars>.<amount_minor>.<base64url(HMAC-SHA256)[:22]>

Crediting itself is `Ledger.record_star_payment` (exactly once per charge id).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

_VERSION = "v1"
_SIGNATURE_CHARS = 22  # 132 bits of the tag: forging one takes more tries than anyone can make
_MAX_BYTES = 128
_PAYLOAD_RE = re.compile(r"v1\.([0-9]{1,19})\.([0-9]{1,19})\.([0-9]{1,9})\.([0-9]{1,19})\.([A-Za-z0-9_-]{22})")


@dataclass(frozen=True)
class InvoicePayload:
    tenant_id: int
    user_id: int
    stars: int
    amount_minor: int

    def matches(self, *, tenant_id: int, user_id: int, stars: int) -> bool:
        """What pre_checkout checks: this bot, the paying user, and the Stars total Telegram reports."""
        return (self.tenant_id, self.user_id, self.stars) == (tenant_id, user_id, stars)


def _signature(secret: str, body: str) -> str:
    # A label keeps these tags apart from anything else signed with the same tenant secret.
    tag = hmac.new(secret.encode(), f"stars-invoice|{body}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(tag).decode()[:_SIGNATURE_CHARS]


def sign_invoice_payload(secret: str, tenant_id: int, user_id: int, stars: int, amount_minor: int) -> str:
    if not secret:
        raise ValueError("an invoice secret is required")
    if min(tenant_id, user_id) < 0 or min(stars, amount_minor) <= 0:
        raise ValueError("invoice ids must be non-negative and stars and amount positive")
    body = f"{_VERSION}.{tenant_id}.{user_id}.{stars}.{amount_minor}"
    payload = f"{body}.{_signature(secret, body)}"
    if not _PAYLOAD_RE.fullmatch(payload) or len(payload) > _MAX_BYTES:
        raise ValueError("invoice values are out of range")
    return payload


def verify_invoice_payload(secret: str, payload: str) -> InvoicePayload | None:
    """The payload's values if it is well formed and signed with `secret`, else None."""
    match = _PAYLOAD_RE.fullmatch(payload)
    if match is None or not secret:
        return None
    body, signature = payload.rsplit(".", 1)
    if not hmac.compare_digest(signature, _signature(secret, body)):
        return None
    tenant_id, user_id, stars, amount_minor = (int(g) for g in match.groups()[:4])
    return InvoicePayload(tenant_id, user_id, stars, amount_minor)
