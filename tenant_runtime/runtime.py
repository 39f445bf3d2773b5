"""One tenant's bot: its aiogram `Bot`, update handling, and the singleton work its lock guards.

The supervisor decides *when* (lifecycle, locks); the runtime knows *how*: accept an update durably,
handle it in per-chat order, set the webhook or poll, and report a crash through `failure`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Coroutine
from enum import StrEnum
from typing import Any

import asyncpg
import structlog
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramConflictError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import Update
from aiogram.utils.backoff import Backoff, BackoffConfig
from pydantic import ValidationError

from shared import metrics
from shared.ids import correlation_id
from shared.logs import get_logger
from tenant_runtime.config import BotMode, TenantConfig
from tenant_runtime.ordering import KeyedLocks
from tenant_runtime.services import Services

log = get_logger(__name__)

ALLOWED_UPDATES = ["message", "callback_query", "pre_checkout_query"]
_POLL_BACKOFF = BackoffConfig(min_delay=1.0, max_delay=30.0, factor=1.6, jitter=0.1)
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class TokenInvalid(Exception):
    """Telegram rejected the bot token (401/404): retrying will not help until the config changes."""


class Outcome(StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


def chat_of(payload: dict[str, Any]) -> int | None:
    """The chat an update belongs to, read from the raw JSON (cheaper than aiogram's resolver)."""
    for key, value in payload.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        chat = value.get("chat") or (value.get("message") or {}).get("chat")
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return int(chat["id"])
        sender = value.get("from")
        if isinstance(sender, dict) and isinstance(sender.get("id"), int):
            return int(sender["id"])
    return None


class TenantRuntime:
    def __init__(self, config: TenantConfig, services: Services, session: AiohttpSession) -> None:
        self.config = config
        self.services = services
        self.bot = Bot(config.bot_token, session=session, default=DefaultBotProperties(parse_mode="HTML"))
        self.failure: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self.last_update_at: float | None = None
        self._chat_locks = KeyedLocks()
        self._singletons: set[asyncio.Task[None]] = set()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._unavailable_told: dict[int, float] = {}
        self._log = log.bind(tenant=config.slug)

    @property
    def webhook_url(self) -> str | None:
        base = self.services.settings.public_base_url
        return f"{base}/webhook/{self.config.slug}" if base else None

    def mode(self) -> BotMode:
        return self.config.bot_mode or self.services.settings.effective_bot_mode

    def reconfigure(self, config: TenantConfig) -> None:
        """Take fields that need no new Bot (admins, markup, language…) without a restart."""
        self.config = config
        self._log = log.bind(tenant=config.slug)

    # --- token and singleton work -------------------------------------------------------------

    async def check_token(self) -> None:
        try:
            await self.bot.get_me(request_timeout=15)
        except (TelegramUnauthorizedError, TelegramNotFound) as exc:
            raise TokenInvalid(exc.message) from None

    async def activate(self) -> None:
        """Run the singleton work: called when this process holds the tenant's lock."""
        mode = self.mode()
        if mode == "webhook":
            await self._ensure_webhook()
        else:
            await self._call(self.bot.delete_webhook(drop_pending_updates=False, request_timeout=15))
            self._spawn_singleton(self._poll_forever())
        self._spawn_singleton(self._reclaim_forever())

    async def deactivate(self) -> None:
        tasks = list(self._singletons)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._singletons.clear()

    async def drain(self, timeout: float) -> None:
        """Let in-flight updates finish (bounded), for a graceful stop."""
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=timeout)

    async def _ensure_webhook(self) -> None:
        url = self.webhook_url
        if url is None:
            raise RuntimeError("webhook mode needs PUBLIC_BASE_URL")
        info = await self._call(self.bot.get_webhook_info(request_timeout=15))
        if info.url == url and sorted(info.allowed_updates or []) == sorted(ALLOWED_UPDATES):
            return
        await self._call(
            self.bot.set_webhook(
                url=url,
                secret_token=self.config.webhook_secret,
                allowed_updates=ALLOWED_UPDATES,
                max_connections=40,
                request_timeout=15,
            )
        )
        self._log.info("webhook set", path=f"/webhook/{self.config.slug}")

    async def _call(self, request: Awaitable[Any]) -> Any:
        try:
            return await request
        except (TelegramUnauthorizedError, TelegramNotFound) as exc:
            raise TokenInvalid(exc.message) from None

    def _spawn_singleton(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._singletons.add(task)
        task.add_done_callback(self._singleton_done)

    def _singleton_done(self, task: asyncio.Task[None]) -> None:
        self._singletons.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not self.failure.done():
            self.failure.set_result(exc)

    def report_failure(self, exc: BaseException) -> None:
        if not self.failure.done():
            self.failure.set_result(exc)

    async def _poll_forever(self) -> None:
        offset: int | None = None
        backoff = Backoff(_POLL_BACKOFF)
        conflicts = 0
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=25, allowed_updates=ALLOWED_UPDATES, request_timeout=40
                )
            except (TelegramUnauthorizedError, TelegramNotFound) as exc:
                raise TokenInvalid(exc.message) from None
            except TelegramRetryAfter as exc:
                metrics.TELEGRAM_429.labels(self.config.slug).inc()
                await asyncio.sleep(exc.retry_after)
                continue
            except TelegramConflictError:
                # Someone else polls this token (or a webhook was set behind our back): not us to fight.
                conflicts += 1
                if conflicts >= 5:
                    raise
                await backoff.asleep()
                continue
            except (TelegramNetworkError, TelegramServerError) as exc:
                self._log.warning("polling error, retrying", error=type(exc).__name__)
                await backoff.asleep()
                continue
            backoff.reset()
            conflicts = 0
            for update in updates:
                payload = update.model_dump(mode="json", exclude_none=True, by_alias=True)
                # Accept durably before the next getUpdates confirms the offset to Telegram; if the
                # database is down, keep the offset here so Telegram hands the update out again.
                chat_id = chat_of(payload)
                accepted = await self._accept(payload, update.update_id, chat_id, source="polling")
                if accepted is None:
                    await backoff.asleep()
                    break
                offset = update.update_id + 1
                if accepted:
                    self._track(self._process(update, chat_id))

    async def _reclaim_forever(self) -> None:
        """Finish updates that a crashed process accepted but never handled."""
        while True:
            await asyncio.sleep(15)
            try:
                for pending in await self.services.inbox.reclaim_stale(self.config.id):
                    update = Update.model_validate(pending.payload, context={"bot": self.bot})
                    self._log.info("resuming an update left by a stopped process", update_id=pending.update_id)
                    await self._process(update, chat_of(pending.payload))
            except _DB_ERRORS as exc:
                self._log.warning("inbox reclaim failed", error=type(exc).__name__)

    def _track(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return task

    # --- updates ----------------------------------------------------------------------------------

    async def handle_webhook(self, payload: dict[str, Any]) -> Outcome:
        try:
            update = Update.model_validate(payload, context={"bot": self.bot})
        except ValidationError:
            return Outcome.INVALID
        chat_id = chat_of(payload)
        accepted = await self._accept(payload, update.update_id, chat_id, source="webhook")
        if accepted is None:
            return Outcome.UNAVAILABLE
        if not accepted:
            return Outcome.DUPLICATE
        task = self._track(self._process(update, chat_id))
        # Shielded: a client that hangs up must not cancel the handling of an accepted update.
        await asyncio.shield(task)
        return Outcome.HANDLED

    async def _accept(
        self, payload: dict[str, Any], update_id: int, chat_id: int | None, *, source: str
    ) -> bool | None:
        """True: ours to handle. False: duplicate. None: the database is unreachable."""
        slug = self.config.slug
        metrics.UPDATES_RECEIVED.labels(slug, source).inc()
        try:
            accepted = await self.services.inbox.accept(self.config.id, update_id, chat_id, payload)
        except _DB_ERRORS as exc:
            self._log.warning(
                "database unavailable, update not accepted", update_id=update_id, error=type(exc).__name__
            )
            await self._tell_unavailable(chat_id)
            return None
        if not accepted:
            metrics.UPDATES_DUPLICATE.labels(slug).inc()
        return accepted

    async def _process(self, update: Update, chat_id: int | None) -> None:
        started = time.perf_counter()
        cid = correlation_id()
        ok = True
        # A pre-checkout query must be answered within 10 s: it never queues behind a slow handler.
        lock_key = (chat_id or 0) if update.pre_checkout_query is None else -update.update_id
        async with self._chat_locks.hold(lock_key):
            with structlog.contextvars.bound_contextvars(
                tenant=self.config.slug, update_id=update.update_id, correlation_id=cid
            ):
                try:
                    await self.services.dispatcher.feed_update(self.bot, update, runtime=self, correlation_id=cid)
                except (TelegramUnauthorizedError, TelegramNotFound) as exc:
                    ok = False
                    self.report_failure(TokenInvalid(exc.message))
                except _DB_ERRORS as exc:
                    # Left 'processing': the inbox lease hands it out again once the database is back
                    # (a Stars payment, say, must not be dropped by a failover).
                    self._log.warning(
                        "database error while handling; will retry the update",
                        update_id=update.update_id,
                        error=type(exc).__name__,
                    )
                    await self._tell_unavailable(chat_id)
                    metrics.UPDATES_FAILED.labels(self.config.slug).inc()
                    return
                except Exception:
                    ok = False
                    self._log.exception("handler failed", update_id=update.update_id, correlation_id=cid)
                    await self._apologise(chat_id, cid)
                await self._finish(update.update_id, ok)
        self.last_update_at = time.time()
        slug = self.config.slug
        (metrics.UPDATES_HANDLED if ok else metrics.UPDATES_FAILED).labels(slug).inc()
        metrics.HANDLER_SECONDS.labels(slug).observe(time.perf_counter() - started)

    async def _finish(self, update_id: int, ok: bool) -> None:
        for attempt in range(3):
            try:
                await self.services.inbox.finish(self.config.id, update_id, ok=ok)
                return
            except _DB_ERRORS as exc:
                self._log.warning(
                    "could not mark update finished", update_id=update_id, attempt=attempt, error=type(exc).__name__
                )
                await asyncio.sleep(0.5 * (attempt + 1))

    async def _apologise(self, chat_id: int | None, cid: str) -> None:
        if chat_id is None:
            return
        from tenant_runtime.texts import text

        with contextlib.suppress(TelegramAPIError, asyncio.TimeoutError):
            await self.bot.send_message(
                chat_id, text(self.config.default_language, "error.generic", cid=cid), request_timeout=10
            )

    async def _tell_unavailable(self, chat_id: int | None) -> None:
        """One short note per chat per minute while Postgres is down; Telegram redelivers the update."""
        if chat_id is None:
            return
        now = time.monotonic()
        if now - self._unavailable_told.get(chat_id, 0.0) < 60:
            return
        self._unavailable_told[chat_id] = now
        from tenant_runtime.texts import text

        with contextlib.suppress(TelegramAPIError, asyncio.TimeoutError):
            await self.bot.send_message(
                chat_id, text(self.config.default_language, "error.unavailable"), request_timeout=10
            )
