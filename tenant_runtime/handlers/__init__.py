"""aiogram routers of the tenant bot. Every handler receives `runtime` (the tenant's TenantRuntime)."""

from aiogram import Router


def build_routers() -> list[Router]:
    from tenant_runtime.handlers import start

    return [start.router]
