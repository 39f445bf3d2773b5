"""Which catalog a user reads."""

from __future__ import annotations

from tenant_runtime.config import Language


def pick_language(telegram_code: str | None, default: Language) -> Language:
    """English for English-speaking Telegram clients, Russian for Russian-speaking ones, else the tenant's."""
    code = (telegram_code or "").lower()
    if code.startswith("en"):
        return "en"
    if code[:2] in ("ru", "uk", "be", "kk"):
        return "ru"
    return default
