"""One tenant's bot: its aiogram `Bot`, update handling, and the singleton work its lock guards.

The supervisor decides *when* (lifecycle, locks); the runtime knows *how*: accept an update durably,
handle it in per-chat order, set the webhook or poll, and report a crash through `failure`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import asyncpg
import structlog
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import Update
from pydantic import ValidationError

from shared import metrics
from shared.db import DB_UNAVAILABLE
from shared.ids import correlation_id
from shared.logs import get_logger
from tenant_runtime.arrival import Arrival
from tenant_runtime.config import BotMode, TenantConfig
from tenant_runtime.errors import TokenInvalid
from tenant_runtime.inbox import Pending
from tenant_runtime.ordering import KeyedLocks
from tenant_runtime.polling import ALLOWED_UPDATES, poll_forever
from tenant_runtime.services import Services
from tenant_runtime.telegram.fence import LeaseLapsed, owned_work
from tenant_runtime.telegram.fsm_storage import prefetched
from tenant_runtime.telegram.profile_sync import ProfileKeeper, desired_profile
from tenant_runtime.updates import INT64, Handling, Outcome, chat_of, ints_fit, storable

log = get_logger(__name__)


class TenantRuntime:
    def __init__(self, config: TenantConfig, services: Services, session: AiohttpSession) -> None:
        self.config = config
        self.services = services
        self.bot = Bot(config.bot_token, session=session, default=DefaultBotProperties(parse_mode="HTML"))
        self.failure: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self.last_update_at: float | None = None
        self._chat_locks = KeyedLocks()
        self._singletons: set[asyncio.Task[None]] = set()
        self._in_flight: set[asyncio.Task[Outcome]] = set()
        # Accepted by this process and not finished yet (running or queued behind its chat): their
        # inbox leases are renewed, and the reclaimer never takes them from under us.
        self.open_updates: set[int] = set()
        self._unavailable_told: dict[int, float] = {}
        self._active = False  # between activate() and deactivate(): this process holds the tenant
        self._retired = False  # its slot stopped (a change, a removal): a new update goes to the successor
        self._profile = ProfileKeeper(lambda: self.services.pool, self.bot, lambda: self.config, self._singletons)
        self._log = log.bind(tenant=config.slug)

    @property
    def webhook_url(self) -> str | None:
        """The webhook names the tenant's row (`?t=<id>`, ignored by the route): a shop removed and added
        again with the same bot has a new secret, and getWebhookInfo cannot show a secret, so an unchanged
        URL would be taken for a webhook already set and every update would bounce (chaos seed 22)."""
        base = self.services.settings.public_base_url
        return f"{base}/webhook/{self.config.slug}?t={self.config.id}" if base else None

    def mode(self) -> BotMode:
        return self.config.bot_mode or self.services.settings.effective_bot_mode

    def reconfigure(self, config: TenantConfig) -> None:
        """Take fields that need no new Bot (admins, markup, language…) without a restart."""
        before = desired_profile(self.config)
        self.config = config
        self._log = log.bind(tenant=config.slug)
        if self._active and desired_profile(config) != before:  # held here: Telegram's profile follows
            self._profile.want()

    # --- token and singleton work -------------------------------------------------------------

    async def check_token(self) -> None:
        try:
            await self.bot.get_me(request_timeout=15)
        except (TelegramUnauthorizedError, TelegramNotFound) as exc:
            raise TokenInvalid(exc.message) from None

    async def activate(self, still_held: Callable[[], bool]) -> None:
        """Run the singleton work: called when this process holds the tenant's lock.

        `still_held` is asked right before each side effect Telegram sees (setWebhook, polling): a
        lock lost while an earlier call was in flight must not start work another process now owns. A
        retired runtime (its slot stopping) starts nothing: nobody would deactivate it again.
        """

        def ours() -> bool:
            return still_held() and not self._retired

        if not ours():
            return
        if self.mode() == "webhook":
            await self._ensure_webhook(ours)
        else:
            await self._call(self.bot.delete_webhook(drop_pending_updates=False, request_timeout=15))
            if not ours():
                return
            self._spawn_singleton(poll_forever(self))
        if ours():
            self._active = True
            self._profile.want()

    async def deactivate(self) -> None:
        self._active = False
        tasks = list(self._singletons)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._singletons.clear()

    def retire(self) -> None:
        """Its slot is stopping: an update reaching it from now on is left to the slot's successor."""
        self._retired = True

    async def drain(self, timeout: float) -> None:
        """Let in-flight updates finish (bounded), for a graceful stop."""
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=timeout)

    async def _ensure_webhook(self, still_held: Callable[[], bool]) -> None:
        url = self.webhook_url
        if url is None:
            raise RuntimeError("webhook mode needs PUBLIC_BASE_URL")
        info = await self._call(self.bot.get_webhook_info(request_timeout=15))
        if info.url == url and sorted(info.allowed_updates or []) == sorted(ALLOWED_UPDATES):
            return
        if not still_held():
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

    async def take_polled(self, update: Update) -> bool:
        """Claim a polled update (before the next getUpdates confirms it to Telegram) and handle it in the
        background. False: not now (the database is unreachable, or this runtime is retired): the poller
        keeps the offset, so Telegram hands the update out again."""
        payload = update.model_dump(mode="json", exclude_none=True, by_alias=True)
        chat_id = chat_of(payload)
        inbox, tid = self.services.inbox, self.config.id

        async def claim() -> Arrival:
            return Arrival.claim_only(await inbox.accept(tid, update.update_id, storable(chat_id), payload))

        found = await self._accept(update.update_id, chat_id, "polling", claim)
        if found is None:
            return False
        if found.accepted:
            self._track(self._process(update, chat_id))
        return True

    def resume(self, pending: Pending) -> None:
        """Handle an update a stopped process accepted but never finished (the inbox reclaimer found it;
        this process now holds the claim). Runs in the background, in its chat's order."""
        update = Update.model_validate(pending.payload, context={"bot": self.bot})
        self._log.info("resuming an update left by a stopped process", update_id=pending.update_id)
        self.open_updates.add(pending.update_id)
        self._track(self._process(update, chat_of(pending.payload)))

    def _track(self, coro: Coroutine[Any, Any, Outcome]) -> asyncio.Task[Outcome]:
        task = asyncio.create_task(coro)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return task

    # --- updates ----------------------------------------------------------------------------------

    async def handle_webhook(self, payload: object) -> Outcome:
        update_id = payload.get("update_id") if isinstance(payload, dict) else None
        if not isinstance(update_id, int) or isinstance(update_id, bool) or not 0 <= update_id < INT64:
            return Outcome.INVALID
        assert isinstance(payload, dict)
        if not ints_fit(payload):
            return Outcome.INVALID  # Telegram's ids fit in 64 bits; Postgres (bigint) needs them to
        try:
            update = Update.model_validate(payload, context={"bot": self.bot})
        except ValidationError:
            return Outcome.INVALID
        # Shielded: a client that hangs up must not cancel the handling of an update once claimed.
        return await asyncio.shield(self._track(self._process(update, chat_of(payload), payload)))

    async def _accept(
        self, update_id: int, chat_id: int | None, source: str, claim: Callable[[], Awaitable[Arrival]]
    ) -> Arrival | None:
        """Run `claim` (a statement that claims the update) with its failures handled. Not `accepted`: a
        duplicate, or data Postgres refused (skipped). None: not now (the database is unreachable, or this
        runtime is retired: Telegram redelivers the update to the slot's successor)."""
        if self._retired:
            return None
        slug = self.config.slug
        metrics.UPDATES_RECEIVED.labels(slug, source).inc()
        try:
            found = await claim()
        except DB_UNAVAILABLE as exc:
            self._log.warning(
                "database unavailable, update not accepted", update_id=update_id, error=type(exc).__name__
            )
            await self._tell_unavailable(storable(chat_id))
            return None
        except asyncpg.exceptions.DataError as exc:
            # Postgres refused this update's data (a NUL in a text, a number out of range): not an outage.
            # Answering "unavailable" would make Telegram redeliver it for ever and block the chat.
            self._log.warning("update refused by the database; skipped", update_id=update_id, error=type(exc).__name__)
            metrics.UPDATES_FAILED.labels(slug).inc()
            return Arrival.claim_only(False)
        except asyncpg.PostgresError as exc:
            # Anything else (a deadlock, a conflict in the user's touch) is worth Telegram's redelivery.
            self._log.warning(
                "update not accepted; left for a redelivery", update_id=update_id, error=type(exc).__name__
            )
            return None
        if found.accepted and self._retired:  # retired during the accept: the stop's drain did not see it
            await self._hand_back(update_id, "retired")
            return None
        if found.accepted:
            self.open_updates.add(update_id)
        else:
            metrics.UPDATES_DUPLICATE.labels(slug).inc()
        return found

    async def _process(self, update: Update, chat_id: int | None, payload: dict[str, Any] | None = None) -> Outcome:
        """Handle an update in its chat's turn. With `payload` (a webhook delivery) it is claimed by the
        statement that starts its handling (`arrival`); without, it was claimed before (polled, resumed)."""
        started = time.perf_counter()
        # A pre-checkout query must be answered within 10 s: it never queues behind a slow handler.
        lock_key = (chat_id or 0) if update.pre_checkout_query is None else -update.update_id
        async with self._chat_locks.hold(lock_key):
            arrival: Arrival | None = None
            if payload is not None:
                arrivals, config = self.services.arrivals, self.config
                found = await self._accept(
                    update.update_id,
                    chat_id,
                    "webhook",
                    lambda: arrivals.claim(config, update, payload, storable(chat_id)),
                )
                if found is None:
                    return Outcome.UNAVAILABLE
                if not found.accepted:
                    return Outcome.DUPLICATE
                arrival = found
            cid = correlation_id()
            with structlog.contextvars.bound_contextvars(
                tenant=self.config.slug, update_id=update.update_id, correlation_id=cid
            ):
                handling = await self._handle(update, chat_id, cid, arrival)
                if handling is not Handling.HANDED_BACK:
                    await self._finish(update.update_id, handling is Handling.DONE)
        self.last_update_at = time.time()
        slug = self.config.slug
        (metrics.UPDATES_HANDLED if handling is Handling.DONE else metrics.UPDATES_FAILED).labels(slug).inc()
        metrics.HANDLER_SECONDS.labels(slug).observe(time.perf_counter() - started)
        return Outcome.UNAVAILABLE if handling is Handling.HANDED_BACK else Outcome.HANDLED

    async def _handle(self, update: Update, chat_id: int | None, cid: str, arrival: Arrival | None) -> Handling:
        try:
            with owned_work(self.services.lease):
                if arrival is None:  # claimed before its turn: the rest of the arrival, in one statement
                    arrival = await self.services.arrivals.after_claim(self.config, update)
                with prefetched(arrival.fsm):
                    await self.services.dispatcher.feed_update(
                        self.bot, update, runtime=self, correlation_id=cid, arrival=arrival
                    )
        except (TelegramUnauthorizedError, TelegramNotFound, TelegramNetworkError, TelegramServerError) as exc:
            # This process cannot answer for the bot right now (its token was revoked, or Telegram is out
            # of reach from here): the reply would be lost. Hand the update back for whoever serves the
            # bot next (a rotated token, another replica), and restart: the lock moves if it stays so.
            await self._hand_back(update.update_id, type(exc).__name__)
            if isinstance(exc, LeaseLapsed):
                return Handling.HANDED_BACK  # the locker steps this runtime down at its next beat
            failure = (
                TokenInvalid(exc.message) if isinstance(exc, TelegramUnauthorizedError | TelegramNotFound) else exc
            )
            self.report_failure(failure)
            return Handling.HANDED_BACK
        except DB_UNAVAILABLE as exc:
            # Left 'processing': handed out again once the database is back (a Stars payment, say,
            # must not be dropped by a failover); Telegram redelivers it meanwhile.
            self.open_updates.discard(update.update_id)
            self._log.warning(
                "database error while handling; will retry the update",
                update_id=update.update_id,
                error=type(exc).__name__,
            )
            await self._tell_unavailable(chat_id)
            return Handling.HANDED_BACK
        except Exception:
            self._log.exception("handler failed", update_id=update.update_id, correlation_id=cid)
            await self._apologise(chat_id, cid)
            return Handling.FAILED
        return Handling.DONE

    async def _hand_back(self, update_id: int, why: str) -> None:
        self.open_updates.discard(update_id)
        self._log.warning("cannot answer for this bot now; update handed back", update_id=update_id, error=why)
        with contextlib.suppress(*DB_UNAVAILABLE):
            await self.services.inbox.release(self.config.id, update_id)

    async def _finish(self, update_id: int, ok: bool) -> None:
        self.open_updates.discard(update_id)
        for attempt in range(3):
            try:
                await self.services.inbox.finish(self.config.id, update_id, ok=ok)
                return
            except DB_UNAVAILABLE as exc:
                self._log.warning(
                    "could not mark update finished", update_id=update_id, attempt=attempt, error=type(exc).__name__
                )
                await asyncio.sleep(0.5 * (attempt + 1))

    async def _apologise(self, chat_id: int | None, cid: str) -> None:
        if chat_id is None:
            return
        from tenant_runtime.telegram.texts import text

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
        from tenant_runtime.telegram.texts import text

        with contextlib.suppress(TelegramAPIError, asyncio.TimeoutError):
            await self.bot.send_message(
                chat_id, text(self.config.default_language, "error.unavailable"), request_timeout=10
            )
