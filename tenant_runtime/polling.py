"""getUpdates for a tenant in polling mode, while its runtime holds the tenant's lock (a singleton task).

Telegram's errors decide what happens: a revoked token ends the runtime (`TokenInvalid`), a 429 waits as
asked, another poller of the same token or Telegram out of reach for a while restarts it (the lock can
then move to a process that can poll), anything else is retried with backoff.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiogram.exceptions import (
    TelegramConflictError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.utils.backoff import Backoff, BackoffConfig

from shared import metrics
from shared.logs import get_logger
from tenant_runtime.errors import TokenInvalid
from tenant_runtime.telegram.fence import LeaseLapsed, owned_work

if TYPE_CHECKING:
    from tenant_runtime.runtime import TenantRuntime

__all__ = ["ALLOWED_UPDATES", "POLL_FAILURES_BEFORE_RESTART", "poll_forever"]

log = get_logger(__name__)

ALLOWED_UPDATES = ["message", "callback_query", "pre_checkout_query"]
_POLL_BACKOFF = BackoffConfig(min_delay=1.0, max_delay=30.0, factor=1.6, jitter=0.1)
POLL_FAILURES_BEFORE_RESTART = 3  # getUpdates failures in a row (network, 5xx) before the runtime restarts


async def poll_forever(runtime: TenantRuntime) -> None:
    offset: int | None = None
    backoff = Backoff(_POLL_BACKOFF)
    conflicts = unreachable = 0
    while True:
        try:
            with owned_work(runtime.services.lease):
                updates = await runtime.bot.get_updates(
                    offset=offset, timeout=25, allowed_updates=ALLOWED_UPDATES, request_timeout=40
                )
        except LeaseLapsed:
            # Not a Telegram failure: the locker has not confirmed the lock lately. It steps this
            # runtime down if the lock is gone; until then, wait a beat without counting it.
            await asyncio.sleep(1.0)
            continue
        except (TelegramUnauthorizedError, TelegramNotFound) as exc:
            raise TokenInvalid(exc.message) from None
        except TelegramRetryAfter as exc:
            metrics.TELEGRAM_429.labels(runtime.config.slug).inc()
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
            unreachable += 1
            if unreachable >= POLL_FAILURES_BEFORE_RESTART:
                # Telegram stays out of reach from here: restart, so the lock can move to a
                # process that can poll (this one is not able to serve the bot).
                raise
            log.warning("polling error, retrying", tenant=runtime.config.slug, error=type(exc).__name__)
            await backoff.asleep()
            continue
        backoff.reset()
        conflicts = unreachable = 0
        for update in updates:
            # Claimed durably before the next getUpdates confirms the offset to Telegram; if the database
            # is down, the offset stays here so Telegram hands the update out again.
            if not await runtime.take_polled(update):
                await backoff.asleep()
                break
            offset = update.update_id + 1
