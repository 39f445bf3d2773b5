"""Sends the open broadcasts of the tenants this process holds: the job of the tenant's lock holder only.

`tick` runs every TICK_S under `shared.periodic` (the supervisor's "broadcasts" loop) with the runtimes
this process holds. For each tenant with a running broadcast it starts one bounded batch (BATCH_S of
sending) unless one is running; before every message the batch checks that the process still holds
the tenant, paces itself (`telegram.traffic.BulkPacer`: replies to users go first, at most 25 calls a
second per bot), claims one recipient, sends, records. A 429 puts that recipient back and pauses only
that bot's broadcast for `retry_after`; a user who blocked the bot is counted and marked, never retried;
a timeout (Telegram may have delivered) becomes 'unknown', never sent again. The admin's progress message
is edited every few seconds; the last batch marks the broadcast done and sends the final report.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)

from shared import metrics
from shared.logs import get_logger
from tenant_runtime.broadcasts import store
from tenant_runtime.broadcasts.model import Broadcast, BroadcastStatus, Content, RecipientStatus
from tenant_runtime.broadcasts.sending import send_content
from tenant_runtime.generation.job import TenantHandle
from tenant_runtime.telegram.broadcast_texts import final_text, progress_keyboard, progress_text
from tenant_runtime.telegram.traffic import BulkPacer, bulk

__all__ = ["BATCH_S", "MAX_ATTEMPTS", "TICK_S", "BroadcastSender"]

log = get_logger(__name__)

TICK_S = 0.5
BATCH_S = 10.0
PROGRESS_EVERY_S = 3.0
MAX_ATTEMPTS = 3  # tries of one recipient whose sends fail before Telegram answers (connection refused)


@dataclass(frozen=True)
class _Sent:
    status: RecipientStatus
    error: str | None = None
    retry_after: int = 0  # > 0: Telegram's 429; the recipient goes back and the bot's broadcast waits
    stop: bool = False  # stop this batch (429, or the token no longer works)


class BroadcastSender:
    def __init__(self, pool: asyncpg.Pool, instance: str, serving: Callable[[int], TenantHandle | None]) -> None:
        self._pool = pool
        self._instance = instance
        self._serving = serving  # the tenant's handle while this process serves it, else None
        self._pacer = BulkPacer()
        self._batches: dict[int, asyncio.Task[None]] = {}  # tenant id -> its running batch
        self._waiting_until: dict[int, float] = {}  # tenant id -> monotonic time (Telegram's 429)
        self._progress_at: dict[int, float] = {}  # broadcast id -> monotonic time of its last edit

    async def tick(self) -> None:
        # Every tenant's open broadcasts (a few at any time; none at rest), then those this process serves:
        # no list of every held tenant sent to Postgres twice a second.
        now = time.monotonic()
        for broadcast in await store.open_broadcasts(self._pool):
            tenant_id = broadcast.tenant_id
            if tenant_id in self._batches or self._waiting_until.get(tenant_id, 0.0) > now:
                continue
            tenant = self._serving(tenant_id)
            if tenant is None:
                continue
            task = asyncio.create_task(self._batch(tenant, broadcast))
            self._batches[tenant_id] = task
            task.add_done_callback(functools.partial(self._finished, tenant_id))

    def _finished(self, tenant_id: int, task: asyncio.Task[None]) -> None:
        self._batches.pop(tenant_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("broadcast batch failed", tenant_id=tenant_id, error=repr(task.exception()))

    async def _batch(self, tenant: TenantHandle, broadcast: Broadcast) -> None:
        tenant_id, bot = tenant.config.id, tenant.bot
        orphans = await store.resolve_orphans(self._pool, broadcast.id, self._instance)
        if orphans:
            log.warning("broadcast claims of a stopped sender left unsent", broadcast=broadcast.id, count=orphans)
        deadline = time.monotonic() + BATCH_S
        while broadcast.status is BroadcastStatus.RUNNING and time.monotonic() < deadline:
            if self._serving(tenant_id) is None:
                return  # another process holds the tenant now; it carries on from the next recipient
            await self._pacer.turn(bot.id)
            claimed = await store.claim(self._pool, broadcast.id, self._instance)
            if claimed is None:
                break
            sent = await self._send(bot, claimed.user_id, broadcast.content, claimed.attempts)
            await store.record_result(
                self._pool, broadcast.id, tenant_id, claimed.user_id, self._instance, sent.status, sent.error
            )
            if sent.status is not RecipientStatus.PENDING:
                metrics.BROADCAST_MESSAGES.labels(tenant.config.slug, sent.status).inc()
            if sent.retry_after:
                self._waiting_until[tenant_id] = time.monotonic() + sent.retry_after
                log.warning(
                    "telegram rate limit: broadcast waits", broadcast=broadcast.id, retry_after=sent.retry_after
                )
            if sent.stop:
                break
            await self._progress(bot, broadcast)
        done = await store.finish_if_done(self._pool, broadcast.id)
        if done is not None:
            await self._report(bot, done)
        else:
            await self._progress(bot, broadcast)

    async def _send(self, bot: Bot, user_id: int, content: Content, attempts: int) -> _Sent:
        try:
            with bulk():
                await send_content(bot, user_id, content)
        except TelegramRetryAfter as exc:
            return _Sent(RecipientStatus.PENDING, retry_after=max(1, exc.retry_after), stop=True)
        except TelegramForbiddenError as exc:
            return _Sent(RecipientStatus.BLOCKED, exc.message)
        except TelegramUnauthorizedError as exc:
            return _Sent(RecipientStatus.PENDING, exc.message, stop=True)  # the runtime reports the token
        except TelegramBadRequest as exc:
            return _Sent(RecipientStatus.FAILED, exc.message)
        except TelegramNetworkError as exc:
            # Refused before anything was sent: safe to try again. Otherwise (a timeout, a dropped
            # connection) Telegram may have delivered it, and a second copy is worse than none.
            if exc.message.startswith("ClientConnectorError") and attempts < MAX_ATTEMPTS:
                return _Sent(RecipientStatus.PENDING, exc.message, stop=True)
            return _Sent(RecipientStatus.UNKNOWN, exc.message)
        except TelegramAPIError as exc:  # a 5xx: Telegram answered, so it did not deliver
            status = RecipientStatus.PENDING if attempts < MAX_ATTEMPTS else RecipientStatus.FAILED
            return _Sent(status, exc.message, stop=status is RecipientStatus.PENDING)
        return _Sent(RecipientStatus.SENT)

    async def _progress(self, bot: Bot, broadcast: Broadcast) -> None:
        now = time.monotonic()
        if now - self._progress_at.get(broadcast.id, 0.0) < PROGRESS_EVERY_S:
            return
        self._progress_at[broadcast.id] = now
        current = await store.get(self._pool, broadcast.tenant_id, broadcast.id) or broadcast
        await _edit(bot, current, progress_text(current, await store.progress(self._pool, broadcast.id)))

    async def _report(self, bot: Bot, broadcast: Broadcast) -> None:
        self._progress_at.pop(broadcast.id, None)
        report = final_text(broadcast, await store.progress(self._pool, broadcast.id))
        log.info("broadcast finished", tenant_id=broadcast.tenant_id, broadcast=broadcast.id)
        await _edit(bot, broadcast, report)
        with contextlib.suppress(TelegramAPIError, TimeoutError):
            await bot.send_message(broadcast.admin_chat_id, report, request_timeout=10)


async def _edit(bot: Bot, broadcast: Broadcast, body: str) -> None:
    """The admin's progress message, in place (an edit that changes nothing, or fails, is fine)."""
    if broadcast.progress_message_id is None:
        return
    with contextlib.suppress(TelegramAPIError, TimeoutError):
        await bot.edit_message_text(
            text=body,
            chat_id=broadcast.admin_chat_id,
            message_id=broadcast.progress_message_id,
            reply_markup=progress_keyboard(broadcast),
            request_timeout=10,
        )
