"""The one aiogram Dispatcher shared by every tenant.

Routers can be attached to one parent only, and a dispatcher per tenant costs memory and start time
at 1,000 tenants; so there is one, and each update carries its tenant as the `runtime` argument.
"""

from __future__ import annotations

from aiogram import Dispatcher
from aiogram.fsm.storage.base import BaseStorage

from tenant_runtime.context import UserContextMiddleware
from tenant_runtime.handlers import build_routers


def build_dispatcher(storage: BaseStorage) -> Dispatcher:
    dispatcher = Dispatcher(storage=storage)
    dispatcher.update.outer_middleware(UserContextMiddleware())
    for router in build_routers():
        dispatcher.include_router(router)
    return dispatcher
