"""aiogram routers of the tenant bot, in the order updates try them."""

from __future__ import annotations

from aiogram import Router


def build_routers() -> list[Router]:
    from tenant_runtime.handlers import admin, catalog, common, fallback, generation, payments, wizard

    # admin before common: common's catch-all for unknown /commands must not see an admin's /admin.
    return [
        admin.router,
        payments.router,
        common.router,
        generation.router,
        catalog.router,
        wizard.router,
        fallback.router,
    ]
