"""Shops created by their owners through the platform bot: /newshop, operator approval, /myshops.

`build_platform_bot` wires it for the supervisor: one aiogram dispatcher (routers are singletons, so one
per process), conversations in Postgres, and the poller that one process at a time runs.
"""

from __future__ import annotations

import asyncpg
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from shared.settings import Settings
from supervisor.onboarding.drafts import DraftStorage
from supervisor.onboarding.flow import Onboarding
from supervisor.onboarding.poller import PlatformPoller
from supervisor.onboarding.shops import OwnerShops
from supervisor.tenants import TenantStore
from tenant_runtime.kie.client import KieClient

__all__ = ["PlatformPoller", "build_platform_bot"]

CALL_TIMEOUT_SECONDS = 10


def build_platform_bot(
    settings: Settings, pool: asyncpg.Pool, identity: str, store: TenantStore, kie: KieClient
) -> tuple[PlatformPoller, Bot] | None:
    """None when there is no platform bot, or ONBOARDING=off (then the bot only sends alerts)."""
    if settings.platform_bot_token is None or settings.onboarding == "off":
        return None
    from supervisor.onboarding import approval, common, myshops, newshop

    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base), timeout=CALL_TIMEOUT_SECONDS)
    bot = Bot(
        settings.platform_bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode="HTML", link_preview_is_disabled=True),
    )
    onboarding = Onboarding(OwnerShops(store, settings), kie, store.keys, settings)
    dispatcher = Dispatcher(storage=DraftStorage(pool), onboarding=onboarding)
    # Commands first (/cancel works mid-flow), then the steps, the operators' buttons, and what is left.
    for router in (common.commands, newshop.router, myshops.router, approval.router, common.fallback):
        dispatcher.include_router(router)
    return PlatformPoller(pool, identity, bot, dispatcher), bot
