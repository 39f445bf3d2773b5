"""What a tenant runtime is given by the supervisor: one tenant's decrypted configuration."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

Language = Literal["ru", "en"]
BotMode = Literal["webhook", "polling"]


@dataclass(frozen=True)
class TenantConfig:
    id: int
    slug: str
    display_name: str
    status: str
    bot_id: int
    bot_token: str
    kie_api_key: str | None
    kie_webhook_key: str | None
    webhook_secret: str
    callback_secret: str
    admin_ids: frozenset[int]
    lock_key: int
    markup: Decimal
    default_language: Language
    bot_mode: BotMode | None
    welcome_bonus: int
    referral_bonus: int
    disabled_models: frozenset[str]
    config_version: int
    # None: the platform's STARS_PACKAGES / STARS_RATE_MINOR.
    stars_packages: tuple[int, ...] | None = None
    stars_rate_minor: int | None = None

    @property
    def secrets(self) -> tuple[str | None, ...]:
        return (self.bot_token, self.kie_api_key, self.kie_webhook_key, self.webhook_secret, self.callback_secret)

    def restart_key(self) -> tuple[object, ...]:
        """Fields whose change needs a new Bot/runtime; others are picked up in place."""
        return (self.bot_token, self.bot_mode, self.status)
