"""The platform bot's updates, fetched by one process at a time (long polling; the bot is quiet, and a
poll needs no public URL, so the same code serves a laptop and a Render replica set).

* **One poller.** Each tick renews (or takes over, once stale) the row in `platform_bot_lease`; only its
  holder calls getUpdates. A holder that stops releases it, so the next process polls within a tick.
* **Each update once.** An update is handled only by whoever inserts its id into `platform_bot_updates`
  first, so two holders overlapping during a takeover, or Telegram handing out an update whose offset
  was not confirmed, answer nobody twice. `next_offset` is where the next holder resumes.
* The id is recorded before the handler runs: a process killed mid-handler leaves that one update
  unanswered (the owner sends it again) rather than creating a shop twice.
"""

from __future__ import annotations

import time

import asyncpg
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramConflictError, TelegramUnauthorizedError

from shared.logs import get_logger
from supervisor.onboarding.drafts import prune_drafts

__all__ = ["PlatformPoller"]

log = get_logger(__name__)

LONG_POLL_SECONDS = 10
TICK_BUDGET_SECONDS = 15.0  # a tick polls until then, so the lease is renewed between polls
LEASE_SECONDS = 45.0  # longer than a whole tick: a live holder is never taken over
PRUNE_EVERY_SECONDS = 3600.0
ALLOWED_UPDATES = ["message", "callback_query"]
REJECTED_TELL_EVERY_SECONDS = 600.0
REJECTED_RETRY_SECONDS = 60.0  # a rejected token is tried again this often (it may have been fixed at BotFather)

# The offset belongs to one bot: a PLATFORM_BOT_TOKEN of another bot starts from Telegram's own offset
# (an old, higher offset would confirm, and so drop, every update of the new bot below it).
_LEASE_SQL = """
INSERT INTO platform_bot_lease (id, identity, renewed_at, bot_id) VALUES (true, $1, now(), $3)
ON CONFLICT (id) DO UPDATE SET identity = EXCLUDED.identity, renewed_at = now(), bot_id = EXCLUDED.bot_id,
    next_offset = CASE WHEN platform_bot_lease.bot_id = EXCLUDED.bot_id THEN platform_bot_lease.next_offset ELSE 0 END
WHERE platform_bot_lease.identity = EXCLUDED.identity
   OR platform_bot_lease.renewed_at < now() - make_interval(secs => $2)
   OR platform_bot_lease.bot_id <> EXCLUDED.bot_id
RETURNING next_offset
"""


class PlatformPoller:
    def __init__(
        self,
        pool: asyncpg.Pool,
        identity: str,
        bot: Bot,
        dispatcher: Dispatcher,
        *,
        long_poll: int = LONG_POLL_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self._pool = pool
        self._identity = identity
        self._bot = bot
        self._dispatcher = dispatcher
        self._long_poll = long_poll
        self._lease_seconds = lease_seconds
        self._holding = False
        self._pruned_at = 0.0
        self._rejected_told_at = -REJECTED_TELL_EVERY_SECONDS
        self._rejected_until = 0.0

    async def tick(self) -> None:
        if time.monotonic() < self._rejected_until:
            return
        try:
            await self._tick()
        except TelegramUnauthorizedError:
            self._rejected_until = time.monotonic() + REJECTED_RETRY_SECONDS
            # The operator's PLATFORM_BOT_TOKEN was revoked or mistyped: said plainly, not as a crash loop.
            if time.monotonic() - self._rejected_told_at > REJECTED_TELL_EVERY_SECONDS:
                self._rejected_told_at = time.monotonic()
                log.warning(
                    "Telegram rejects PLATFORM_BOT_TOKEN: the platform bot takes no requests until it is replaced"
                )

    async def _tick(self) -> None:
        started = time.monotonic()
        while time.monotonic() - started < TICK_BUDGET_SECONDS:
            if not await self._poll_round():
                return
        await self._prune()

    async def _poll_round(self) -> bool:
        """One lease renewal and one poll; False when another process polls (or has just polled)."""
        offset = await self._pool.fetchval(_LEASE_SQL, self._identity, self._lease_seconds, self._bot.id)
        if offset is None:
            self._holding = False
            return False
        if not self._holding:
            # getUpdates is refused while a webhook is set (one left by an earlier deployment).
            await self._bot.delete_webhook(drop_pending_updates=False)
            self._holding = True
            log.info("this process polls the platform bot")
        return await self._poll_once(offset)

    async def _poll_once(self, offset: int) -> bool:
        try:
            updates = await self._bot.get_updates(
                offset=offset or None,
                timeout=self._long_poll,
                allowed_updates=ALLOWED_UPDATES,
                request_timeout=self._long_poll + 10,
            )
        except TelegramConflictError:
            # The previous holder's last poll (it ends within one long poll), or another deployment
            # polling the same bot: either way, not again before the next tick.
            return False
        for update in updates:
            first = await self._pool.fetchval(
                "INSERT INTO platform_bot_updates (bot_id, update_id) VALUES ($1, $2) ON CONFLICT DO NOTHING "
                "RETURNING true",
                self._bot.id,
                update.update_id,
            )
            if first:
                try:
                    await self._dispatcher.feed_update(self._bot, update)
                except Exception:
                    # Our bug, not the owner's: logged with its traceback, and the next update still runs.
                    log.exception("platform bot update failed", update_id=update.update_id)
            await self._pool.execute(
                "UPDATE platform_bot_lease SET next_offset = GREATEST(next_offset, $2) WHERE identity = $1",
                self._identity,
                update.update_id + 1,
            )
        return True

    async def _prune(self) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = time.monotonic()
        drafts = await prune_drafts(self._pool)
        await self._pool.execute("DELETE FROM platform_bot_updates WHERE handled_at < now() - interval '7 days'")
        if drafts:
            log.info("abandoned shop drafts dropped", drafts=drafts)

    async def release(self) -> None:
        """At shutdown: the next process takes over at its next tick, not after the lease runs out."""
        if self._holding:
            await self._pool.execute(
                "UPDATE platform_bot_lease SET renewed_at = '-infinity' WHERE identity = $1", self._identity
            )
            self._holding = False
