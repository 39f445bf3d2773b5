"""The few tenant settings a tenant's own admins may change from the bot (markup, model switches).

Each write bumps config_version; the registry's NOTIFY brings it to every running supervisor.
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg


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
