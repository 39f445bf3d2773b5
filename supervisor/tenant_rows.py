"""A `tenants` row as the rest of the process sees it: the decrypted `TenantConfig`, and the
operator's masked description of one. No SQL here: `TenantStore` reads the rows and owns the keys."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from shared.crypto import CryptoError
from shared.redact import mask
from supervisor.tenant_changes import TenantError
from tenant_runtime.config import TenantConfig, TenantStatus
from tenant_runtime.limits.shop_limits import ShopLimits
from tenant_runtime.shop_profile import ShopProfile

__all__ = ["SECRET_COLUMNS", "Decrypt", "TenantHead", "config_from_row", "describe"]

SECRET_COLUMNS = (
    "bot_token_enc",
    "kie_api_key_enc",
    "kie_webhook_key_enc",
    "webhook_secret_enc",
    "callback_secret_enc",
)

# (tenant id, column name without "_enc", ciphertext or None) -> plaintext or None
Decrypt = Callable[[int, str, str | None], str | None]


@dataclass(frozen=True)
class TenantHead:
    """What says whether a running slot is out of date: every change an operator or owner makes bumps
    `config_version`, except a status set by the process itself (a token Telegram rejected)."""

    config_version: int
    status: TenantStatus


def config_from_row(row: asyncpg.Record, decrypt: Decrypt) -> TenantConfig:
    """The row's secrets decrypted; a row that no key opens is a `TenantError` naming the tenant only."""
    tid = row["id"]
    try:
        token = decrypt(tid, "bot_token", row["bot_token_enc"])
        secret = decrypt(tid, "webhook_secret", row["webhook_secret_enc"])
        callback = decrypt(tid, "callback_secret", row["callback_secret_enc"])
        kie = decrypt(tid, "kie_api_key", row["kie_api_key_enc"])
        kie_hook = decrypt(tid, "kie_webhook_key", row["kie_webhook_key_enc"])
    except CryptoError as exc:
        raise TenantError(f"tenant {row['slug']!r}: {exc}") from None
    assert token is not None and secret is not None and callback is not None
    return TenantConfig(
        id=tid,
        slug=row["slug"],
        display_name=row["display_name"],
        status=TenantStatus(row["status"]),
        bot_id=row["bot_id"],
        bot_token=token,
        kie_api_key=kie,
        kie_webhook_key=kie_hook,
        webhook_secret=secret,
        callback_secret=callback,
        admin_ids=frozenset(row["admin_ids"]),
        lock_key=row["lock_key"],
        markup=row["markup"],
        default_language=row["default_language"],
        bot_mode=row["bot_mode"],
        welcome_bonus=row["welcome_bonus"],
        referral_bonus=row["referral_bonus"],
        disabled_models=frozenset(row["disabled_models"]),
        config_version=row["config_version"],
        stars_packages=tuple(row["stars_packages"]) if row["stars_packages"] else None,
        stars_rate_minor=row["stars_rate_minor"],
        limits=ShopLimits(
            free_daily=row["free_daily"],
            max_open_jobs=row["max_open_jobs"],
            rate_per_minute=row["rate_limit_per_minute"],
            timezone=row["timezone"],
        ),
        owner_id=row["owner_id"],
        referral_bonus_invited=row["referral_bonus_invited"],
        profile=ShopProfile.from_row(row["support_url"], _json_object(row["texts"])),
    )


def describe(config: TenantConfig) -> dict[str, object]:
    """The operator's view of a tenant: every secret masked."""
    return {
        "id": config.id,
        "slug": config.slug,
        "display_name": config.display_name,
        "status": config.status.value,
        "owner_id": config.owner_id,
        "bot_id": config.bot_id,
        "bot_token": mask(config.bot_token),
        "kie_api_key": mask(config.kie_api_key) if config.kie_api_key else None,
        "kie_webhook_key": "set" if config.kie_webhook_key else None,
        "admin_ids": sorted(config.admin_ids),
        "lock_key": config.lock_key,
        "markup": str(config.markup),
        "default_language": config.default_language,
        "bot_mode": config.bot_mode,
        "welcome_bonus": config.welcome_bonus,
        "referral_bonus": config.referral_bonus,
        "referral_bonus_invited": config.referral_bonus_invited,
        "disabled_models": sorted(config.disabled_models),
        "stars_packages": list(config.stars_packages) if config.stars_packages else None,
        "stars_rate_minor": config.stars_rate_minor,
        "free_daily": config.limits.free_daily,
        "max_open_jobs": config.limits.max_open_jobs,
        "rate_limit": f"{config.limits.rate_per_minute}/min",
        "timezone": config.limits.timezone,
        "config_version": config.config_version,
        "webhook_path": f"/webhook/{config.slug}",
        "support": config.profile.support_url,
        "texts": {lang: sorted(by_field) for lang, by_field in config.profile.texts.items()},
    }


def _json_object(value: object) -> dict[str, dict[str, str]]:
    """A jsonb column as a dict, whether the pool decodes jsonb (shared.db) or hands over its text."""
    loaded = json.loads(value) if isinstance(value, str) else value
    return loaded if isinstance(loaded, dict) else {}
