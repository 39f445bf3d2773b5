"""The few tenant settings a tenant's own admins may change from the bot (markup, model switches).

Each write bumps config_version; the registry's NOTIFY brings it to every running supervisor.
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from tenant_runtime.shop_profile import DEFAULT_PROFILE, ShopProfile


async def set_markup(pool: asyncpg.Pool, tenant_id: int, markup: Decimal) -> None:
    await pool.execute(
        "UPDATE tenants SET markup = $2, config_version = config_version + 1, updated_at = now() WHERE id = $1",
        tenant_id,
        markup,
    )


async def toggle_model(pool: asyncpg.Pool, tenant_id: int, model_id: str) -> bool:
    """Flip the model's switch; True when it is now disabled."""
    disabled: list[str] = await pool.fetchval(
        """UPDATE tenants SET disabled_models = CASE WHEN $2 = ANY(disabled_models)
               THEN array_remove(disabled_models, $2) ELSE array_append(disabled_models, $2) END,
               config_version = config_version + 1, updated_at = now()
           WHERE id = $1 RETURNING disabled_models""",
        tenant_id,
        model_id,
    )
    return model_id in disabled


async def set_text(pool: asyncpg.Pool, tenant_id: int, language: str, field: str, text: str | None) -> ShopProfile:
    """One of the shop's own texts (already checked by shop_profile.parse_text); None: back to the default.
    Returns the profile as written, another admin's change made meanwhile included."""
    if text is None:
        query = """UPDATE tenants SET texts = CASE WHEN coalesce((texts -> $2) - $3, '{}'::jsonb) = '{}'::jsonb
                       THEN texts - $2 ELSE jsonb_set(texts, ARRAY[$2], (texts -> $2) - $3) END,
                       config_version = config_version + 1, updated_at = now()
                   WHERE id = $1 RETURNING support_url, texts"""
        row = await pool.fetchrow(query, tenant_id, language, field)
    else:
        row = await pool.fetchrow(
            """UPDATE tenants SET texts = jsonb_set(texts, ARRAY[$2],
                   coalesce(texts -> $2, '{}'::jsonb) || jsonb_build_object($3::text, $4::text)),
                   config_version = config_version + 1, updated_at = now()
               WHERE id = $1 RETURNING support_url, texts""",
            tenant_id,
            language,
            field,
            text,
        )
    return _profile(row)


async def set_support(pool: asyncpg.Pool, tenant_id: int, url: str | None) -> ShopProfile:
    """The support contact as a checked https link (shop_profile.parse_support), or None to remove it."""
    row = await pool.fetchrow(
        "UPDATE tenants SET support_url = $2, config_version = config_version + 1, updated_at = now() "
        "WHERE id = $1 RETURNING support_url, texts",
        tenant_id,
        url,
    )
    return _profile(row)


def _profile(row: asyncpg.Record | None) -> ShopProfile:
    if row is None:  # the tenant was removed meanwhile
        return DEFAULT_PROFILE
    return ShopProfile.from_row(row["support_url"], row["texts"])
