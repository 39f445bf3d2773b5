"""aiogram routers of the tenant bot, in the order updates try them."""

from __future__ import annotations

from aiogram import Router


def build_routers() -> list[Router]:
    from tenant_runtime.telegram.handlers import (
        admin,
        admin_broadcast,
        admin_export,
        admin_promo,
        admin_settings,
        catalog,
        common,
        fallback,
        follow_ups,
        generation,
        payments,
        promo,
        wizard,
    )

    # admin before common: common's catch-all for unknown /commands must not see an admin's /admin.
    return [
        admin.router,
        admin_promo.router,
        admin_broadcast.router,
        admin_export.router,
        admin_settings.router,
        payments.router,
        promo.router,
        common.router,
        generation.router,
        follow_ups.router,
        catalog.router,
        wizard.router,
        fallback.router,
    ]
