"""Boot and shutdown of the supervisor process: composition only.

Order matters: the HTTP server listens first (Render probes `/health` from the first second), then
the database is reached (embedded when DATABASE_URL is unset), migrations run, and tenants start.
SIGTERM/SIGINT release every lock at once, let in-flight updates finish, and exit 0.

Here: the order of boot and the database retry. What is built lives in supervisor.compose, the
background loops in supervisor.loops, the way down in supervisor.shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import time
from collections.abc import Coroutine
from typing import Any

import asyncpg
from aiogram.utils.backoff import Backoff, BackoffConfig

from shared import migrations
from shared.db import DB_UNAVAILABLE, POOL_SESSION, connect_dedicated, create_pool, process_identity, session_name
from shared.logs import configure_logging, get_logger
from shared.periodic import LOOPS
from shared.redact import REDACTOR
from shared.settings import Settings
from supervisor import __version__
from supervisor.bootstrap import BootError, load_keys, resolve_dsn, settings_or_report, settings_warnings
from supervisor.broadcast_status import BroadcastStatusPage
from supervisor.callbacks import KieCallbacks
from supervisor.compose import Parts, compose
from supervisor.heap import freeze_while_booting
from supervisor.http import Routes
from supervisor.lifecycle import Lifecycle
from supervisor.locks import Locker
from supervisor.loops import BackgroundLoops
from supervisor.media import MediaFiles
from supervisor.ops import OpsEndpoints
from supervisor.shutdown import shutdown
from supervisor.smoke import run_smoke_test
from supervisor.state import ServerState
from supervisor.stats_page import StatsPage
from supervisor.tenants import TenantStore
from supervisor.webhooks import TelegramWebhook
from tenant_runtime.runtime import TenantRuntime
from tenant_runtime.services import Services
from tenant_runtime.telegram.session import pin_response_models

log = get_logger(__name__)

# supervisor.server imports this module in a worker thread while the event loop answers /health: the
# reply classes of every Bot API method (a second of pydantic work) are built here, not in the loop.
pin_response_models()

_DB_RETRY = BackoffConfig(min_delay=1.0, max_delay=30.0, factor=2.0, jitter=0.2)


class Supervisor:
    """The booted process: builds the services, the lifecycle, the locker and the HTTP routes."""

    def __init__(self, settings: Settings, state: ServerState) -> None:
        self.settings = settings
        self.instance = settings.instance_name  # the operator's label, in logs and /health
        self.identity = process_identity(self.instance)  # this start's name in Postgres
        self.state = state
        state.instance = self.instance
        self._stop = asyncio.Event()
        self._parts = Parts()  # what boot has built so far (supervisor.compose); shutdown closes it
        self._loops = BackgroundLoops(settings, self.identity, self._parts, lambda: self.state.db_status == "ok")

    async def serve(self, host: str, port: int) -> int:
        log.info(
            "listening",
            host=host,
            port=port,
            instance=self.instance,
            identity=self.identity,
            version=__version__,
            mode=self.settings.effective_bot_mode,
        )
        # Everything imported so far (aiogram, pydantic's schemas, the registry) lives as long as the
        # process: out of the collector's view before the tenants start, so no full collection over
        # it stalls the event loop (and /health) during boot.
        gc.freeze()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        boot = asyncio.create_task(self._boot())
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({boot, stop}, return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if boot.done() and boot.exception() is not None:
            log.error("startup failed", error=str(boot.exception()))
            code = 1
        elif not boot.done():
            boot.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await boot
        stop.cancel()
        log.info("shutting down", instance=self.instance)
        await shutdown(self._parts, self.identity)
        log.info("stopped", instance=self.instance)
        return code

    def _on_signal(self) -> None:
        self.state.stopping = True
        for stop in self.state.on_stop:  # workers of this process get the signal too
            stop()
        self._stop.set()

    async def _boot(self) -> None:
        keys = load_keys(self.settings)
        dsn = await resolve_dsn(self.settings)
        pool = self._parts.pool = await self._connect(dsn)
        self.state.db_status = "ok"
        self.state.migrations_applied = True
        store = TenantStore(pool, keys)
        services, lifecycle, locker = await compose(
            self._parts, self.settings, self.identity, dsn, pool, store, self._database_reachable
        )
        await self._register_instance(pool)
        # What boot builds (the tenants' configs, runtimes and bots) lives as long as the process; out of
        # the collector's view, its full collections at boot and under load stay short.
        booting = freeze_while_booting(lambda: lifecycle.version)
        self._parts.tasks.append(asyncio.create_task(booting, name="boot-heap"))
        await lifecycle.sync(await store.all())
        if not lifecycle.slots:
            log.info(
                "no tenants yet; add one with: BOT_TOKEN=... KIE_API_KEY=... "
                "python -m supervisor tenants add <slug> --name <name> --admins <telegram ids>"
            )
        self._loops.start(dsn, pool, store, services, lifecycle, locker)
        self.state.backend = self._routes(services, lifecycle, locker, pool)
        log.info("supervisor ready", tenants=len(lifecycle.slots))
        if self.settings.smoke_test_on_start:
            slot = lifecycle.by_slug.get(self.settings.smoke_test_tenant or "")
            smoke = run_smoke_test(self.settings, services.registry, services.kie, slot.config if slot else None)
            self._parts.tasks.append(asyncio.create_task(_discard(smoke), name="smoke-test"))
        await self._stop.wait()

    async def _connect(self, dsn: str) -> asyncpg.Pool:
        """Migrations, then the pool; retried with backoff while the database is unreachable."""
        backoff = Backoff(_DB_RETRY)
        while True:
            try:
                conn = await connect_dedicated(dsn, application_name=f"tgsup-migrate:{self.identity}"[:63])
                try:
                    await migrations.apply_all(conn)
                finally:
                    await conn.close()
                return await create_pool(
                    dsn, self.settings.db_pool_size, application_name=session_name(POOL_SESSION, self.identity)
                )
            except (*DB_UNAVAILABLE, asyncpg.PostgresError) as exc:
                self.state.db_status = "down"
                delay = next(backoff)
                log.warning("database not reachable; retrying", error=type(exc).__name__, retry_in_s=round(delay, 1))
                await asyncio.sleep(delay)

    def _database_reachable(self, reachable: bool) -> None:
        # The lock beat (every second) is the health signal: /health and /ready follow it, not the
        # 10 s instance heartbeat.
        self.state.db_status = "ok" if reachable else "down"

    def _routes(self, services: Services, lifecycle: Lifecycle, locker: Locker, pool: asyncpg.Pool) -> Routes:
        def resolve(slug: str) -> TenantRuntime | None:
            slot = lifecycle.by_slug.get(slug)
            return slot.runtime if slot is not None else None

        ops = OpsEndpoints(self.settings, self.instance, lifecycle, pool, lambda: len(locker.held))
        broadcasts = BroadcastStatusPage(ops, pool)
        stats = StatsPage(ops, pool)
        return Routes(
            health=self.health,
            webhook=TelegramWebhook(resolve, max_body=self.settings.webhook_max_body_bytes),
            kie_callback=KieCallbacks(resolve, services.jobs),
            media=MediaFiles(resolve),
            metrics=ops.metrics,
            status=ops.status,
            status_json=ops.status_json,
            broadcasts=broadcasts.page,
            broadcasts_json=broadcasts.json,
            stats=stats.page,
            stats_json=stats.json,
        )

    def health(self) -> dict[str, object]:
        counts = dict(self._parts.lifecycle.counts()) if self._parts.lifecycle else {}
        locker = self._parts.locker
        now = time.monotonic()
        loops_failing = sorted(name for name, loop in LOOPS.items() if loop.stale(now))
        body: dict[str, object] = {
            "identity": self.identity,
            "tenants": {"total": sum(counts.values()), "by_state": counts},
            "locks_held": len(locker.held) if locker else 0,
            "loops_failing": loops_failing,
        }
        if locker is not None and locker.unavailable:
            body["locks_unavailable"] = locker.unavailable
        # Still 200 (Render must not restart every bot for one cause), but saying what is wrong.
        reasons = [f"background loop {name} is not making progress" for name in loops_failing]
        if locker is not None and (reason := locker.degraded()) is not None:
            reasons.insert(0, reason)
        if reasons:
            body["degraded"] = True
            body["degraded_reasons"] = reasons
        return body

    async def _register_instance(self, pool: asyncpg.Pool) -> None:
        await pool.execute(
            """INSERT INTO instances (name, host, pid, version) VALUES ($1, $2, $3, $4)
               ON CONFLICT (name) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid,
               version = EXCLUDED.version, started_at = now(), heartbeat_at = now()""",
            self.identity,
            socket.gethostname(),
            os.getpid(),
            __version__,
        )


async def serve(state: ServerState, *, host: str, port: int) -> int:
    """Entered by supervisor.server once the port is bound."""
    settings = settings_or_report()
    if settings is None:
        return 2
    configure_logging(settings.log_level, settings.effective_log_format)
    state.warnings = settings_warnings(settings)
    if settings.master_keys is not None:
        REDACTOR.register(*settings.master_keys.get_secret_value().split(","))
    try:
        return await Supervisor(settings, state).serve(host, port)
    except BootError as exc:
        log.error("startup failed", error=str(exc))
        return 1


async def _discard(coro: Coroutine[Any, Any, object]) -> None:
    await coro


__all__ = ["Supervisor", "serve"]
