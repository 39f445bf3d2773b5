"""Messages and taps per user per minute, checked before any handler work (a dispatcher middleware).

It runs first among our middlewares: an update over the limit costs one UPSERT and nothing else (no
user touch, no bonus, no handler). The first one over gets one short notice, the rest silence until the
window passes (`tenant_runtime.limits.rate`). Payments are never limited (a pre-checkout query must be
answered within 10 s, a successful payment must be credited), nor are the tenant's admins.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TelegramObject, Update, User

from shared import metrics
from tenant_runtime.limits.rate import RateVerdict, count_hit
from tenant_runtime.limits.rate import verdict as rate_verdict
from tenant_runtime.limits.shop_limits import LimitKind
from tenant_runtime.telegram.texts import pick_language, text

if TYPE_CHECKING:
    from tenant_runtime.arrival import Arrival
    from tenant_runtime.runtime import TenantRuntime

__all__ = ["RateLimitMiddleware", "counted"]


def counted(update: Update) -> bool:
    """A message or a tap a user sends; payments are exempt."""
    if update.callback_query is not None:
        return True
    return update.message is not None and update.message.successful_payment is None


class RateLimitMiddleware(BaseMiddleware):
    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        runtime: TenantRuntime = data["runtime"]
        sender: User | None = data.get("event_from_user")
        config = runtime.config
        if sender is None or not isinstance(event, Update) or not counted(event) or sender.id in config.admin_ids:
            return await handler(event, data)
        limit = config.limits.rate_per_minute
        arrival: Arrival | None = data.get("arrival")
        if arrival is not None and arrival.hits is not None:
            verdict = rate_verdict(arrival.hits, limit)  # counted in the update's arrival statement
        else:
            verdict = await count_hit(runtime.services.pool, config.id, sender.id, limit)
        if verdict is RateVerdict.ALLOW:
            return await handler(event, data)
        metrics.LIMIT_HITS.labels(config.slug, LimitKind.RATE).inc()
        if verdict is RateVerdict.NOTICE:
            lang = pick_language(sender.language_code, config.default_language)
            with contextlib.suppress(TelegramAPIError, TimeoutError):
                await data["bot"].send_message(sender.id, text(lang, "limit.rate"))
        return UNHANDLED
