"""The process's background work, each a named loop under shared.periodic (logged, counted, seen by
/health when it stops making progress): the locker, tenant hot reload, job polling, refunds, inbox
leases and reclaim, the Telegram probe, housekeeping, broadcasts, publishing, alerts and the
platform bot. Work that only the lock holder may do runs for `active_runtimes()` alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import asyncpg

from shared import metrics
from shared.logs import get_logger
from shared.periodic import periodic, supervise
from shared.settings import Settings
from supervisor.alerts.service import AlertService
from supervisor.compose import Parts
from supervisor.lifecycle import Lifecycle
from supervisor.listener import TenantListener
from supervisor.locks import Locker
from supervisor.onboarding import build_platform_bot
from supervisor.publish import PUBLISH_SECONDS, RuntimePublisher, SlotReports
from supervisor.resync import resync
from supervisor.slot import WANTING
from supervisor.slot_state import State
from supervisor.tenants import TenantError, TenantStore
from tenant_runtime.billing.refunds import RefundSettler
from tenant_runtime.broadcasts.sender import TICK_S as BROADCAST_TICK_S
from tenant_runtime.broadcasts.sender import BroadcastSender
from tenant_runtime.generation.poller import JobPoller
from tenant_runtime.runtime import TenantRuntime
from tenant_runtime.services import Services
from tenant_runtime.telegram.reachability import QUIET_SECONDS

__all__ = ["BackgroundLoops"]

log = get_logger(__name__)

INBOX_LEASE_RENEW_SECONDS = 20.0  # well inside the inbox's 60 s lease
INBOX_RECLAIM_SECONDS = 15.0
TELEGRAM_PROBE_SECONDS = 1.0  # how often silence is looked at; a question is asked only after QUIET_SECONDS
PLATFORM_BOT_TICK_SECONDS = 1.0  # between a non-holder's lease checks; the holder long-polls in its tick


class BackgroundLoops:
    """Starts the loops into `parts.tasks` (shutdown cancels them) and does their per-tick work."""

    def __init__(self, settings: Settings, identity: str, parts: Parts, database_ok: Callable[[], bool]) -> None:
        self.settings = settings
        self.identity = identity
        self.parts = parts
        self.database_ok = database_ok

    def start(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        store: TenantStore,
        services: Services,
        lifecycle: Lifecycle,
        locker: Locker,
    ) -> None:
        loops = self._loops(dsn, pool, store, services, lifecycle, locker)
        platform = self.parts.platform = build_platform_bot(self.settings, pool, self.identity, store, services.kie)
        if platform is not None:
            loops["platform-bot"] = periodic("platform-bot", PLATFORM_BOT_TICK_SECONDS, platform[0].tick)
        self.parts.tasks += [asyncio.create_task(loop, name=name) for name, loop in loops.items()]

    def _loops(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        store: TenantStore,
        services: Services,
        lifecycle: Lifecycle,
        locker: Locker,
    ) -> dict[str, Coroutine[Any, Any, None]]:
        settings = self.settings
        listener = self._listener(dsn, store, lifecycle, locker)
        poller = JobPoller(services.jobs, lease=services.lease)
        refunds = RefundSettler(pool, services.ledger, settle_after=settings.refund_settle_after_seconds)
        publisher = RuntimePublisher(pool, self.identity, SlotReports(lifecycle))
        alerts = AlertService.build(
            settings,
            pool,
            self.identity,
            lifecycle,
            locker,
            self.database_ok,
            lambda: self.parts.telegram is None or self.parts.telegram.reachable,
        )
        broadcasts = BroadcastSender(pool, self.identity, self.active_runtime)
        return {
            "locker": supervise("locker", locker.run, finished=lambda: locker.stopping),
            "listener": supervise("listener", listener.run),
            "instance-heartbeat": periodic("instance-heartbeat", 10, lambda: self._beat_instance(pool)),
            "job-poller": periodic("job-poller", 1, lambda: poller.poll_once(self.active_runtimes())),
            "refund-settler": periodic(
                "refund-settler", refunds.interval, lambda: refunds.settle_once(self.active_runtimes())
            ),
            "inbox-leases": periodic("inbox-leases", INBOX_LEASE_RENEW_SECONDS, lambda: self._renew_leases(services)),
            "inbox-reclaim": periodic("inbox-reclaim", INBOX_RECLAIM_SECONDS, lambda: self._reclaim(services)),
            "telegram-probe": periodic("telegram-probe", TELEGRAM_PROBE_SECONDS, self._probe_telegram),
            "housekeeping": periodic("housekeeping", 30, lambda: _housekeep(services)),
            "broadcasts": periodic("broadcasts", BROADCAST_TICK_S, broadcasts.tick),
            "runtime-publisher": periodic("runtime-publisher", PUBLISH_SECONDS, publisher.publish_once),
            "alerts": periodic("alerts", settings.alert_interval_seconds, alerts.tick),
        }

    def _listener(self, dsn: str, store: TenantStore, lifecycle: Lifecycle, locker: Locker) -> TenantListener:
        """Hot reload: a NOTIFY applies one tenant's change, a periodic resync catches any missed."""

        async def resynced() -> None:
            await resync(store, lifecycle)
            locker.poke()

        async def changed(tenant_id: int) -> None:
            try:
                config = await store.get_by_id(tenant_id)
            except TenantError as exc:
                log.error("tenant change could not be loaded", tenant_id=tenant_id, error=str(exc))
                return
            if config is None:
                await lifecycle.stop_tenant(tenant_id)
            else:
                await lifecycle.apply(config)
            locker.poke()

        return TenantListener(
            dsn, self.identity, resynced, changed, resync_interval=self.settings.resync_interval_seconds
        )

    def active_runtimes(self) -> Mapping[int, TenantRuntime]:
        """Runtimes whose singleton work (job polling, resuming, refunds) this process owns right now."""
        lifecycle = self.parts.lifecycle
        return lifecycle.active() if lifecycle is not None else {}

    def active_runtime(self, tenant_id: int) -> TenantRuntime | None:
        """One tenant's runtime if this process owns its singleton work right now (no map of every slot)."""
        lifecycle = self.parts.lifecycle
        slot = lifecycle.slots.get(tenant_id) if lifecycle is not None else None
        return slot.runtime if slot is not None and slot.state is State.ACTIVE and slot.locked else None

    async def _renew_leases(self, services: Services) -> None:
        lifecycle = self.parts.lifecycle
        if lifecycle is None:
            return
        open_updates = {
            tid: list(slot.runtime.open_updates)
            for tid, slot in lifecycle.slots.items()
            if slot.runtime is not None and slot.runtime.open_updates
        }
        await services.inbox.renew(open_updates)

    async def _probe_telegram(self) -> None:
        """After a few seconds in which Telegram answered nothing, ask it directly: a blackholed path
        makes no call fail before its timeout, and a quiet bot makes none at all (see `Reachability`).
        While unreachable, the same question tells the process when it can serve again."""
        telegram, probe, lifecycle = self.parts.telegram, self.parts.probe, self.parts.lifecycle
        if telegram is None or probe is None or lifecycle is None or telegram.quiet_for() < QUIET_SECONDS:
            return
        # A bot that is serving or ready to (not one in backoff for its own reasons) asks on the process's
        # behalf. No sort of every slot: this runs every few seconds on an idle process of 10,000 tenants.
        slots = lifecycle.slots.values()
        ready = (s.runtime for s in slots if s.runtime is not None and s.state in WANTING)
        runtime = next(ready, None) or next((s.runtime for s in slots if s.runtime is not None), None)
        if runtime is not None:
            await probe.ask(runtime.bot.token)

    async def _reclaim(self, services: Services) -> None:
        """Finish updates that a stopped process accepted but never handled, for the tenants this
        process holds: one query for all of them (a loop per tenant would cost a query per tenant)."""
        runtimes = self.active_runtimes()
        in_hand = [(tid, uid) for tid, runtime in runtimes.items() for uid in runtime.open_updates]
        reclaimed = await services.inbox.reclaim_stale(list(runtimes), exclude=in_hand)
        # Who serves each tenant now, after the query: a slot may have stopped or been rebuilt meanwhile.
        runtimes = self.active_runtimes()
        for pending in reclaimed:
            runtime = runtimes.get(pending.tenant_id)
            if runtime is not None:
                runtime.resume(pending)
            else:  # given straight back, for the tenant's next owner (or Telegram's redelivery)
                await services.inbox.release(pending.tenant_id, pending.update_id)

    async def _beat_instance(self, pool: asyncpg.Pool) -> None:
        await pool.execute("UPDATE instances SET heartbeat_at = now() WHERE name = $1", self.identity)
        await pool.execute("DELETE FROM instances WHERE heartbeat_at < now() - interval '1 hour'")
        metrics.DB_POOL_SIZE.set(pool.get_size())
        metrics.DB_POOL_IDLE.set(pool.get_idle_size())


async def _housekeep(services: Services) -> None:
    """Process-wide sweeps, safe to run in every replica at once."""
    expired = await services.ledger.expire_holds()
    if expired:
        log.warning("expired holds released", count=expired)
    await services.inbox.prune()
