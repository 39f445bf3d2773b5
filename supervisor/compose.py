"""The composition root: the services every tenant shares, the lifecycle of the tenants' slots and
the locker, wired to each other. The three refer to one another (a runtime needs the services, the
services' FSM storage finds tenants through the lifecycle, the lifecycle asks the locker), so they
are built together, here, and nowhere else."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession

from shared import metrics
from shared.registry import Registry, RegistryError, load_registry
from shared.settings import Settings
from supervisor.bootstrap import BootError
from supervisor.census import metric_rows
from supervisor.lifecycle import Lifecycle
from supervisor.locks import Locker
from supervisor.onboarding import PlatformPoller
from supervisor.telegram_probe import TelegramProbe
from supervisor.tenants import TenantStore
from tenant_runtime.arrival import Arrivals
from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.generation.delivery import TelegramNotifier
from tenant_runtime.generation.downloads import Downloader
from tenant_runtime.generation.jobs import JobService
from tenant_runtime.inbox import Inbox
from tenant_runtime.kie.client import KieClient, KieClientConfig
from tenant_runtime.runtime import TenantRuntime
from tenant_runtime.services import Services
from tenant_runtime.telegram.dispatcher import build_dispatcher
from tenant_runtime.telegram.fence import Lease, LeaseFence
from tenant_runtime.telegram.fsm_storage import PgStorage
from tenant_runtime.telegram.reachability import Reachability
from tenant_runtime.telegram.session import build_session
from tenant_runtime.users import Users

__all__ = ["Parts", "compose"]


@dataclass
class Parts:
    """What boot has built so far, filled in as it goes: shutdown closes exactly what exists, at
    whichever step boot failed or was stopped."""

    pool: asyncpg.Pool | None = None
    session: AiohttpSession | None = None
    kie: KieClient | None = None
    telegram: Reachability | None = None
    probe: TelegramProbe | None = None
    lifecycle: Lifecycle | None = None
    services: Services | None = None
    locker: Locker | None = None
    platform: tuple[PlatformPoller, Bot] | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


async def compose(
    parts: Parts,
    settings: Settings,
    identity: str,
    dsn: str,
    pool: asyncpg.Pool,
    store: TenantStore,
    on_database: Callable[[bool], None],
) -> tuple[Services, Lifecycle, Locker]:
    # Each HTTP client below loads the CA bundle (about 50 ms each here): the steps yield in between, so
    # /health, answered from the first moment, is not held up by a third of a second of them in one go.
    session = parts.session = build_session(settings.telegram_api_base, limit=settings.telegram_connection_limit)
    await asyncio.sleep(0)
    registry = _registry()
    kie = parts.kie = KieClient(
        settings.kie_base_url,
        KieClientConfig(read_timeout_s=settings.kie_read_timeout_seconds),
        on_request=_observe_kie,
    )
    await asyncio.sleep(0)
    telegram = parts.telegram = Reachability(on_change=lambda: locker.poke())
    parts.probe = TelegramProbe(
        settings.telegram_api_base, telegram, stalled_since=lambda since: locker.stalls.stalled_since(since)
    )
    await asyncio.sleep(0)
    session.middleware(telegram)
    session.middleware(LeaseFence())
    # A process draining after SIGTERM released its locks on purpose: it is not frozen, and the
    # updates it still has in hand are its own to finish.
    lease = Lease(confirmed=lambda: locker.confirmed() or locker.stopping, epoch=lambda: locker.epoch)
    lifecycle = parts.lifecycle = Lifecycle(
        lambda config: TenantRuntime(config, services, session),
        lambda tenant_id, reason, version: store.mark_token_invalid(tenant_id, reason, config_version=version),
        lambda: locker.poke(),
        lambda tenant_id, key: locker.holds(tenant_id, key),
        able=lambda: telegram.reachable,
    )
    metrics.TENANT_STATES.source = lambda: metric_rows(lifecycle.slots)
    services = parts.services = await _services(settings, identity, pool, lifecycle, registry, kie, lease)
    locker = parts.locker = Locker(
        dsn,
        identity,
        lifecycle.wanted_locks,
        lifecycle.reconcile,
        heartbeat=settings.lock_heartbeat_seconds,
        trust_window=settings.lock_trust_window_seconds,
        on_database=on_database,
        settling=lifecycle.settling,
        quiesce=lifecycle.quiesce,
    )
    return services, lifecycle, locker


def _registry() -> Registry:
    try:
        return load_registry()
    except RegistryError as exc:
        raise BootError(str(exc)) from None


async def _services(
    settings: Settings,
    identity: str,
    pool: asyncpg.Pool,
    lifecycle: Lifecycle,
    registry: Registry,
    kie: KieClient,
    lease: Lease,
) -> Services:
    ledger = Ledger(pool)
    notifier = TelegramNotifier(
        pool, downloads=Downloader(allow_loopback=settings.allow_loopback_downloads), registry=registry
    )
    await asyncio.sleep(0)  # the downloader's client loaded the CA bundle; the dispatcher's routers are next
    return Services(
        pool=pool,
        settings=settings,
        instance=identity,
        inbox=Inbox(pool, identity),
        arrivals=Arrivals(pool, identity),
        dispatcher=build_dispatcher(PgStorage(pool, lifecycle.tenant_by_bot)),
        registry=registry,
        ledger=ledger,
        users=Users(pool),
        kie=kie,
        jobs=JobService(pool, ledger, kie, registry, settings, notifier),
        lease=lease,
    )


def _observe_kie(operation: str, code: int, seconds: float) -> None:
    metrics.KIE_SECONDS.labels(operation).observe(seconds)
    if code != 200:
        metrics.KIE_ERRORS.labels(operation, str(code)).inc()
