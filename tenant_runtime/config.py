"""What a tenant runtime is given by the supervisor: one tenant's decrypted configuration."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from tenant_runtime.limits.shop_limits import DEFAULT_LIMITS, ShopLimits
from tenant_runtime.shop_profile import DEFAULT_PROFILE, ShopProfile

Language = Literal["ru", "en"]
BotMode = Literal["webhook", "polling"]


class TenantStatus(StrEnum):
    """`tenants.status` (sql/001, sql/017): what the operator or the owner asked for, not what runs."""

    ENABLED = "enabled"
    DISABLED = "disabled"  # by an operator; only an operator enables it again
    TOKEN_INVALID = "token_invalid"  # noqa: S105 - a status. Telegram rejected the token; a rotation enables it
    PENDING = "pending"  # created through the platform bot, waiting for an operator's approval
    PAUSED = "paused"  # paused by its owner from /myshops; the owner resumes it

    @property
    def served(self) -> bool:
        """Whether a process should hold a slot for it (a token_invalid slot only reports its state)."""
        return self in (TenantStatus.ENABLED, TenantStatus.TOKEN_INVALID)


@dataclass(frozen=True)
class TenantConfig:
    id: int
    slug: str
    display_name: str
    status: TenantStatus
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
    referral_bonus: int  # to the referrer, once per user who joined with their link
    disabled_models: frozenset[str]
    config_version: int
    # None: the platform's STARS_PACKAGES / STARS_RATE_MINOR.
    stars_packages: tuple[int, ...] | None = None
    stars_rate_minor: int | None = None
    limits: ShopLimits = DEFAULT_LIMITS
    owner_id: int | None = None  # who created it through the platform bot
    referral_bonus_invited: int = 0  # to the user who joined with a referral link
    profile: ShopProfile = DEFAULT_PROFILE  # its own welcome/help texts, descriptions, support contact

    @property
    def secrets(self) -> tuple[str | None, ...]:
        return (self.bot_token, self.kie_api_key, self.kie_webhook_key, self.webhook_secret, self.callback_secret)

    def restart_key(self) -> tuple[object, ...]:
        """Fields whose change needs a new Bot/runtime; others are picked up in place."""
        return (self.bot_token, self.bot_mode, self.status)
