"""What an operator, the CLI or the platform bot asks of the tenant registry: a new tenant, a change
to one, and the error they get back. Kept apart from `TenantStore` so the callers that only build
requests (the CLI's parsing, onboarding's forms) read them without the SQL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from tenant_runtime.config import BotMode, Language, TenantStatus
from tenant_runtime.limits.shop_limits import DEFAULT_LIMITS, ShopLimits

__all__ = ["NewTenant", "TenantChanges", "TenantError", "merged_texts"]


class TenantError(Exception):
    """A registry operation failed; the message is safe to show (no secrets)."""


@dataclass(frozen=True)
class NewTenant:
    slug: str
    display_name: str
    bot_token: str
    bot_id: int
    kie_api_key: str | None
    admin_ids: list[int]
    markup: Decimal = Decimal("2.0")
    default_language: Language = "ru"
    bot_mode: BotMode | None = None
    kie_webhook_key: str | None = None
    welcome_bonus: int = 0
    referral_bonus: int = 0
    referral_bonus_invited: int = 0
    stars_packages: tuple[int, ...] | None = None
    stars_rate_minor: int | None = None
    limits: ShopLimits = DEFAULT_LIMITS
    status: TenantStatus = TenantStatus.ENABLED
    owner_id: int | None = None  # created through the platform bot by this Telegram user


@dataclass(frozen=True)
class TenantChanges:
    display_name: str | None = None
    bot_token: tuple[str, int] | None = None
    kie_api_key: str | None = None
    kie_webhook_key: str | None = None
    admin_ids: list[int] | None = None
    markup: Decimal | None = None
    default_language: Language | None = None
    bot_mode: BotMode | None = None
    welcome_bonus: int | None = None
    referral_bonus: int | None = None
    referral_bonus_invited: int | None = None
    disabled_models: list[str] | None = None
    # () / 0 put the tenant back on the platform's Stars packages / rate; None leaves them as they are.
    stars_packages: tuple[int, ...] | None = None
    stars_rate_minor: int | None = None
    # Limits (sql/010_shop_limits.sql); None leaves each as it is.
    free_daily: int | None = None
    max_open_jobs: int | None = None
    rate_limit_per_minute: int | None = None
    timezone: str | None = None
    # The shop's own words (tenant_runtime.shop_profile), already checked: "" clears the support
    # contact; texts are merged per language and field ("" removes one, back to the default).
    support_url: str | None = None
    texts: Mapping[str, Mapping[str, str]] | None = None


def merged_texts(
    current: Mapping[str, Mapping[str, str]], changes: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, str]]:
    """The texts column after `TenantChanges.texts`: per language and field, "" removing one."""
    merged = {lang: dict(by_field) for lang, by_field in current.items()}
    for lang, by_field in changes.items():
        for name, value in by_field.items():
            if value:
                merged.setdefault(lang, {})[name] = value
            else:
                merged.get(lang, {}).pop(name, None)
    return {lang: by_field for lang, by_field in merged.items() if by_field}
