"""What KIE POSTs to `callBackUrl`: the body's parsing and the webhook signature's check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from pydantic import ValidationError

from shared import strict
from tenant_runtime.kie.errors import KieCallbackError
from tenant_runtime.kie.tasks import CallbackPayload, describe

SIGNATURE_MAX_AGE_S = 300
SIGNATURE_STAMP_DIGITS = 12  # seconds since the epoch, for ~30,000 years
SIGNATURE_MAX_CHARS = 64  # base64 of an HMAC-SHA256 is 44


def parse_callback(body: bytes) -> CallbackPayload:
    """Parse a callback body; raise `KieCallbackError` when it is not one.

    Depth-bounded, and only text Postgres can store: an unknown job's callback is kept as it came."""
    try:
        raw = strict.loads(body, storable=True)
    except strict.JsonError as exc:
        raise KieCallbackError(f"callback body: {exc}") from None
    if not isinstance(raw, dict):
        raise KieCallbackError("callback body is not a JSON object")
    try:
        return CallbackPayload.model_validate(raw)
    except ValidationError as exc:
        raise KieCallbackError(f"invalid callback: {describe(exc)}") from None


def _signature(task_id: str, timestamp: int, key: str) -> str:
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_signature(task_id: str, timestamp: str | int, signature: str, key: str, *, now: float | None = None) -> bool:
    """Check KIE's webhook signature headers: base64(HMAC-SHA256(key, f"{task_id}.{timestamp}")).

    Timestamps more than 5 minutes away from now (past or future) are rejected against replays.
    """
    sent_at = timestamp if isinstance(timestamp, int) else strict.uint(timestamp, max_digits=SIGNATURE_STAMP_DIGITS)
    if sent_at is None:
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > SIGNATURE_MAX_AGE_S:
        return False
    # Header values may hold anything (lone surrogates too): only a base64 string can be a signature.
    given = strict.token(signature, alphabet=strict.BASE64, max_len=SIGNATURE_MAX_CHARS)
    return given is not None and hmac.compare_digest(_signature(task_id, sent_at, key).encode(), given.encode())
