"""Boot and shutdown of the supervisor process.

Order matters: the HTTP server listens first (Render probes `/health` from the first second), then
the database is reached (embedded when DATABASE_URL is unset), migrations run, and tenants start.
SIGTERM/SIGINT release every lock at once, let in-flight updates finish, and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import signal
import socket
import sys
import time

import asyncpg
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.utils.backoff import Backoff, BackoffConfig
from aiohttp import web

from shared import metrics, migrations
from shared.db import connect_dedicated, create_pool
from shared.logs import configure_logging, get_logger
from shared.redact import REDACTOR
from shared.settings import Settings, SettingsError, load_settings
from supervisor import __version__
from supervisor.bootstrap import BootError, load_keys, resolve_dsn
from supervisor.http import ServerState, error_response, json_response
from supervisor.lifecycle import Lifecycle
from supervisor.listener import TenantListener
from supervisor.locks import Locker
from supervisor.tenants import TenantError, TenantStore
from tenant_runtime.config import TenantConfig
from tenant_runtime.dispatcher import build_dispatcher
from tenant_runtime.fsm_storage import PgStorage
from tenant_runtime.inbox import Inbox
from tenant_runtime.runtime import Outcome, TenantRuntime
from tenant_runtime.services import Services

log = get_logger(__name__)

DRAIN_SECONDS = 20.0  # well inside Render's 30 s between SIGTERM and SIGKILL
_DB_RETRY = BackoffConfig(min_delay=1.0, max_delay=30.0, factor=2.0, jitter=0.2)


class Supervisor:
    """The booted process; also the HTTP server's `Backend`."""

    def __init__(self, settings: Settings, state: ServerState) -> None:
        self.settings = settings
        self.instance = settings.instance_name
        self.state = state
        state.instance = self.instance
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._pool: asyncpg.Pool | None = None
        self._session: AiohttpSession | None = None
        self._locker: Locker | None = None
        self._lifecycle: Lifecycle | None = None
        self._store: TenantStore | None = None
        self._services: Services | None = None

    async def serve(self, host: str, port: int) -> int:
        log.info(
            "listening",
            host=host,
            port=port,
            instance=self.instance,
            version=__version__,
            mode=self.settings.effective_bot_mode,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
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
        await self._shutdown()
        log.info("stopped", instance=self.instance)
        return code

    async def _boot(self) -> None:
        keys = load_keys(self.settings)
        dsn = await resolve_dsn(self.settings)
        backoff = Backoff(_DB_RETRY)
        while True:
            try:
                conn = await connect_dedicated(dsn, application_name=f"tgsup-migrate:{self.instance}"[:63])
                try:
                    await migrations.apply_all(conn)
                finally:
                    await conn.close()
                self._pool = await create_pool(
                    dsn, self.settings.db_pool_size, application_name=f"tgsup:{self.instance}"[:63]
                )
                break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                self.state.db_status = "down"
                delay = next(backoff)
                log.warning("database not reachable; retrying", error=type(exc).__name__, retry_in_s=round(delay, 1))
                await asyncio.sleep(delay)
        self.state.db_status = "ok"
        self.state.migrations_applied = True
        pool = self._pool
        store = self._store = TenantStore(pool, keys)
        self._session = AiohttpSession(
            api=TelegramAPIServer.from_base(self.settings.telegram_api_base),
            limit=self.settings.telegram_connection_limit,
        )
        session = self._session
        lifecycle: Lifecycle
        services: Services

        def build_runtime(config: TenantConfig) -> TenantRuntime:
            return TenantRuntime(config, services, session)

        lifecycle = self._lifecycle = Lifecycle(build_runtime, store.mark_token_invalid, lambda: locker.poke())
        storage = PgStorage(pool, lifecycle.tenant_by_bot)
        services = Services(
            pool=pool,
            settings=self.settings,
            instance=self.instance,
            inbox=Inbox(pool, self.instance),
            dispatcher=build_dispatcher(storage),
        )
        locker = self._locker = Locker(
            dsn,
            self.instance,
            lifecycle.wanted_locks,
            lifecycle.on_locks,
            heartbeat=self.settings.lock_heartbeat_seconds,
            trust_window=self.settings.lock_trust_window_seconds,
        )
        self._services = services
        await self._register_instance(pool)

        async def resync() -> None:
            configs = await store.all()
            await lifecycle.sync(configs)

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

        await resync()
        if not lifecycle.slots:
            log.info(
                "no tenants yet; add one with: BOT_TOKEN=... KIE_API_KEY=... "
                "python -m supervisor tenants add <slug> --name <name> --admins <telegram ids>"
            )
        listener = TenantListener(
            dsn, self.instance, resync, changed, resync_interval=self.settings.resync_interval_seconds
        )
        self._tasks += [
            asyncio.create_task(locker.run(), name="locker"),
            asyncio.create_task(listener.run(), name="listener"),
            asyncio.create_task(self._heartbeat(pool), name="instance-heartbeat"),
        ]
        self.state.backend = self
        log.info("supervisor ready", tenants=len(lifecycle.slots))
        await self._stop.wait()

    # --- Backend for the HTTP server -----------------------------------------------------------------

    def health(self) -> dict[str, object]:
        counts = self._lifecycle.counts() if self._lifecycle else {}
        locks = len(self._locker.held) if self._locker else 0
        return {"tenants": {"total": sum(counts.values()), "by_state": counts}, "locks_held": locks}

    async def webhook(self, request: web.Request) -> web.StreamResponse:
        lifecycle = self._lifecycle
        slot = lifecycle.by_slug.get(request.match_info["slug"]) if lifecycle else None
        if slot is None or slot.runtime is None:
            return error_response(404, "unknown bot")
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), slot.config.webhook_secret.encode()):
            return error_response(401, "bad secret token")
        if request.content_length is not None and request.content_length > self.settings.webhook_max_body_bytes:
            return error_response(413, "body too large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "body too large")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return error_response(400, "body is not JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
            return error_response(400, "not a Telegram update")
        outcome = await slot.runtime.handle_webhook(payload)
        if outcome is Outcome.INVALID:
            return error_response(400, "not a Telegram update")
        if outcome is Outcome.UNAVAILABLE:
            # Non-2xx: Telegram keeps the update and redelivers it once the database is back.
            return error_response(503, "temporarily unavailable")
        return json_response({"ok": True})

    async def kie_callback(self, request: web.Request) -> web.StreamResponse:
        return error_response(404, "unknown job")

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        return error_response(404, "not enabled")

    async def status(self, request: web.Request) -> web.StreamResponse:
        return error_response(404, "not enabled")

    async def status_json(self, request: web.Request) -> web.StreamResponse:
        return error_response(404, "not enabled")

    async def _register_instance(self, pool: asyncpg.Pool) -> None:
        await pool.execute(
            """INSERT INTO instances (name, host, pid, version) VALUES ($1, $2, $3, $4)
               ON CONFLICT (name) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid,
               version = EXCLUDED.version, started_at = now(), heartbeat_at = now()""",
            self.instance,
            socket.gethostname(),
            os.getpid(),
            __version__,
        )

    async def _heartbeat(self, pool: asyncpg.Pool) -> None:
        while True:
            await asyncio.sleep(10)
            try:
                await pool.execute("UPDATE instances SET heartbeat_at = now() WHERE name = $1", self.instance)
                await pool.execute("DELETE FROM instances WHERE heartbeat_at < now() - interval '1 hour'")
                metrics.DB_POOL_SIZE.set(pool.get_size())
                metrics.DB_POOL_IDLE.set(pool.get_idle_size())
                self.state.db_status = "ok"
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                self.state.db_status = "down"
                log.warning("database heartbeat failed", error=type(exc).__name__)

    async def _shutdown(self) -> None:
        started = time.monotonic()
        if self._locker is not None:
            await self._locker.release_all()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._lifecycle is not None:
            await self._lifecycle.stop_all(drain_timeout=DRAIN_SECONDS)
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.execute("DELETE FROM lock_holders WHERE instance = $1", self.instance, timeout=2)
                await self._pool.execute("DELETE FROM instances WHERE name = $1", self.instance, timeout=2)
            await self._pool.close()
        if self._session is not None:
            await self._session.close()
        log.info("shutdown complete", seconds=round(time.monotonic() - started, 3))


async def serve(state: ServerState, *, host: str, port: int) -> int:
    """Entered by supervisor.server once the port is bound."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        for line in exc.lines:
            print(f"error: {line}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.effective_log_format)
    if settings.master_keys is not None:
        REDACTOR.register(*settings.master_keys.get_secret_value().split(","))
    try:
        return await Supervisor(settings, state).serve(host, port)
    except BootError as exc:
        log.error("startup failed", error=str(exc))
        return 1
