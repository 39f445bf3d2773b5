"""Identifiers: correlation ids and per-tenant random secrets."""

from __future__ import annotations

import secrets


def correlation_id() -> str:
    return secrets.token_hex(8)


def webhook_secret() -> str:
    """A value for Telegram's `secret_token` (1-256 chars of A-Za-z0-9_-)."""
    return secrets.token_urlsafe(32)
