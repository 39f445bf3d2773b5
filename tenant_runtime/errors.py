"""Failures of a tenant's runtime that its supervisor treats apart from a crash."""

from __future__ import annotations

__all__ = ["TokenInvalid"]


class TokenInvalid(Exception):
    """Telegram rejected the bot token (401/404): retrying will not help until the config changes."""
