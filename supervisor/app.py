"""Boot and shutdown of the supervisor process.

Order matters: the HTTP server listens first (Render probes `/health` from the first second), then
the database is reached (embedded when DATABASE_URL is unset), migrations run, and tenants start.
SIGTERM/SIGINT release every lock at once, let in-flight updates finish, and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import json
import mimetypes
import os
import signal
import socket
import time
from collections.abc import Coroutine
from typing import Any

import aiohttp
import asyncpg
import httpx
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramAPIError
from aiogram.utils.backoff import Backoff, BackoffConfig
from aiohttp import web

from shared import metrics, migrations
from shared.db import POOL_SESSION, connect_dedicated, create_pool, session_name
from shared.logs import configure_logging, get_logger
from shared.redact import REDACTOR
from shared.registry import RegistryError, load_registry
from shared.settings import Settings
from supervisor import __version__
from supervisor.bootstrap import BootError, load_keys, resolve_dsn, settings_or_report
from supervisor.http import error_response, json_response
from supervisor.lifecycle import Lifecycle, State
from supervisor.listener import TenantListener
from supervisor.locks import Locker
from supervisor.ops import OpsEndpoints
from supervisor.smoke import run_smoke_test
from supervisor.state import ServerState
from supervisor.tenants import TenantError, TenantStore
from tenant_runtime.config import TenantConfig
from tenant_runtime.delivery import TelegramNotifier
from tenant_runtime.dispatcher import build_dispatcher
from tenant_runtime.fsm_storage import PgStorage
from tenant_runtime.inbox import Inbox
from tenant_runtime.jobs import JobService
from tenant_runtime.kie_client import KieClient, KieClientConfig
from tenant_runtime.ledger import Ledger
from tenant_runtime.media import read_media_token
from tenant_runtime.refunds import RefundSettler
from tenant_runtime.runtime import Outcome, TenantRuntime
from tenant_runtime.services import Services
from tenant_runtime.telegram_session import build_session
from tenant_runtime.users import Users

log = get_logger(__name__)

DRAIN_SECONDS = 18.0  # plus ~7 s of closing: inside Render's 30 s between SIGTERM and SIGKILL
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
        self._kie: KieClient | None = None
        self._ops: OpsEndpoints | None = None
        self._http: httpx.AsyncClient | None = None

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
                    dsn, self.settings.db_pool_size, application_name=session_name(POOL_SESSION, self.instance)
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
        session = self._session = build_session(
            self.settings.telegram_api_base, limit=self.settings.telegram_connection_limit
        )
        lifecycle: Lifecycle
        services: Services

        def build_runtime(config: TenantConfig) -> TenantRuntime:
            return TenantRuntime(config, services, session)

        lifecycle = self._lifecycle = Lifecycle(build_runtime, store.mark_token_invalid, lambda: locker.poke())
        storage = PgStorage(pool, lifecycle.tenant_by_bot)
        try:
            registry = load_registry()
        except RegistryError as exc:
            raise BootError(str(exc)) from None
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(60, connect=10))
        kie = self._kie = KieClient(
            self.settings.kie_base_url,
            KieClientConfig(read_timeout_s=self.settings.kie_read_timeout_seconds),
            on_request=_observe_kie,
        )
        ledger = Ledger(pool)
        jobs = JobService(pool, ledger, kie, registry, self.settings, TelegramNotifier(pool, self._http))
        services = Services(
            pool=pool,
            settings=self.settings,
            instance=self.instance,
            inbox=Inbox(pool, self.instance),
            dispatcher=build_dispatcher(storage),
            registry=registry,
            ledger=ledger,
            users=Users(pool),
            kie=kie,
            jobs=jobs,
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
        refunds = RefundSettler(pool, ledger, settle_after=self.settings.refund_settle_after_seconds)
        self._ops = OpsEndpoints(self.settings, self.instance, lifecycle, pool, lambda: len(locker.held))
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
            asyncio.create_task(jobs.run_poller(self._active_runtimes), name="job-poller"),
            asyncio.create_task(refunds.run(self._active_runtimes), name="refund-settler"),
            asyncio.create_task(self._housekeeping(services), name="housekeeping"),
        ]
        # What boot built (modules, registry, routers, the tenants' bots) lives as long as the process;
        # taking it out of the collector's view makes each full collection under load cheaper.
        gc.freeze()
        self.state.backend = self
        log.info("supervisor ready", tenants=len(lifecycle.slots))
        if self.settings.smoke_test_on_start:
            slot = lifecycle.by_slug.get(self.settings.smoke_test_tenant or "")
            smoke = run_smoke_test(self.settings, registry, kie, slot.config if slot else None)
            self._tasks.append(asyncio.create_task(_discard(smoke), name="smoke-test"))
        await self._stop.wait()

    def _active_runtimes(self) -> dict[int, TenantRuntime]:
        """Runtimes whose singleton work (job polling, resuming) this process owns."""
        lifecycle = self._lifecycle
        if lifecycle is None:
            return {}
        return {
            tid: slot.runtime
            for tid, slot in lifecycle.slots.items()
            if slot.state == State.ACTIVE and slot.runtime is not None
        }

    async def _housekeeping(self, services: Services) -> None:
        """Process-wide sweeps, safe to run in every replica at once."""
        while True:
            await asyncio.sleep(30)
            try:
                expired = await services.ledger.expire_holds()
                if expired:
                    log.warning("expired holds released", count=expired)
                await services.inbox.prune()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("housekeeping failed", error=type(exc).__name__)

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

    def _runtime(self, slug: str) -> TenantRuntime | None:
        slot = self._lifecycle.by_slug.get(slug) if self._lifecycle else None
        return slot.runtime if slot is not None else None

    async def kie_callback(self, request: web.Request) -> web.StreamResponse:
        runtime = self._runtime(request.match_info["slug"])
        if runtime is None or self._services is None:
            return error_response(404, "unknown tenant")
        body = await request.read()
        status = await self._services.jobs.handle_callback(runtime, request.match_info["token"], body, request.headers)
        return json_response({"ok": status == 200}, status=status)

    async def media(self, request: web.Request) -> web.StreamResponse:
        """A file a user sent, fetched through the tenant's bot, for KIE to download."""
        runtime = self._runtime(request.match_info["slug"])
        if runtime is None:
            return error_response(404, "not found")
        config = runtime.config
        file_id = read_media_token(config.callback_secret, config.id, request.match_info["token"])
        if file_id is None:
            return error_response(404, "not found")
        try:
            found = await runtime.bot.get_file(file_id, request_timeout=15)
            if found.file_path is None:
                return error_response(404, "not found")
            data = await runtime.bot.download_file(found.file_path, timeout=60)
        except TelegramAPIError:
            return error_response(404, "not found")
        except (aiohttp.ClientError, TimeoutError):
            return error_response(502, "file temporarily unavailable")
        assert data is not None
        content_type = mimetypes.guess_type(found.file_path)[0] or "application/octet-stream"
        return web.Response(
            body=data.read(), content_type=content_type, headers={"Cache-Control": "private, max-age=3600"}
        )

    # The backend is plugged into the server only after boot, so _ops exists whenever these run.
    async def metrics(self, request: web.Request) -> web.StreamResponse:
        assert self._ops is not None
        return await self._ops.metrics(request)

    async def status(self, request: web.Request) -> web.StreamResponse:
        assert self._ops is not None
        return await self._ops.status(request)

    async def status_json(self, request: web.Request) -> web.StreamResponse:
        assert self._ops is not None
        return await self._ops.status_json(request)

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
        """Locks first (the other replica takes over at once), then a bounded drain, then connections.

        The drain is capped at DRAIN_SECONDS and each close at a few seconds: all within Render's 30 s.
        """
        started = time.monotonic()
        if self._locker is not None:
            await self._locker.release_all()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                if self._lifecycle is not None:
                    await self._lifecycle.stop_all(drain_timeout=DRAIN_SECONDS - 5)
                if self._services is not None:
                    await self._services.jobs.drain(timeout=3)
        except TimeoutError:
            log.warning("drain did not finish in time; stopping anyway", seconds=DRAIN_SECONDS)
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.execute("DELETE FROM lock_holders WHERE instance = $1", self.instance, timeout=2)
                await self._pool.execute("DELETE FROM instances WHERE name = $1", self.instance, timeout=2)
            try:
                await asyncio.wait_for(self._pool.close(), timeout=3)
            except TimeoutError:
                self._pool.terminate()
        for closer in (
            self._session.close if self._session else None,
            self._kie.aclose if self._kie else None,
            self._http.aclose if self._http else None,
        ):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(closer(), timeout=2)
        log.info("shutdown complete", seconds=round(time.monotonic() - started, 3))


async def serve(state: ServerState, *, host: str, port: int) -> int:
    """Entered by supervisor.server once the port is bound."""
    settings = settings_or_report()
    if settings is None:
        return 2
    configure_logging(settings.log_level, settings.effective_log_format)
    if settings.master_keys is not None:
        REDACTOR.register(*settings.master_keys.get_secret_value().split(","))
    try:
        return await Supervisor(settings, state).serve(host, port)
    except BootError as exc:
        log.error("startup failed", error=str(exc))
        return 1


async def _discard(coro: Coroutine[Any, Any, object]) -> None:
    await coro


def _observe_kie(operation: str, code: int, seconds: float) -> None:
    metrics.KIE_SECONDS.labels(operation).observe(seconds)
    if code != 200:
        metrics.KIE_ERRORS.labels(operation, str(code)).inc()
