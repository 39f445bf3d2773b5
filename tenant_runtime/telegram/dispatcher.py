"""The one aiogram Dispatcher shared by every tenant.

Routers can be attached to one parent only, and a dispatcher per tenant costs memory and start time
at 1,000 tenants; so there is one, and each update carries its tenant as the `runtime` argument.
"""

from __future__ import annotations

from aiogram import Dispatcher
from aiogram.fsm.storage.base import BaseStorage

from tenant_runtime.telegram.ban_gate import BanGate
from tenant_runtime.telegram.context import UserContextMiddleware
from tenant_runtime.telegram.handlers import build_routers
from tenant_runtime.telegram.rate_limit import RateLimitMiddleware


def build_dispatcher(storage: BaseStorage) -> Dispatcher:
    dispatcher = Dispatcher(storage=storage)
    # The rate limit first: an update over it costs one UPSERT and no other work.
    dispatcher.update.outer_middleware(RateLimitMiddleware())
    dispatcher.update.outer_middleware(UserContextMiddleware())
    dispatcher.update.outer_middleware(BanGate())
    for router in build_routers():
        dispatcher.include_router(router)
    return dispatcher
