"""Stars refunds with Telegram: one call's answer, and settling refunds whose answer never came.

The ledger debits a refund before Telegram is asked (`Ledger.begin_star_refund`). When the call times
out or Telegram answers 5xx, nobody knows whether the Stars went back, so the payment stays
'refunding'. Asking again is safe: Telegram refunds a charge once and answers CHARGE_ALREADY_REFUNDED
after that, so a repeated call turns an unknown outcome into a known one.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import asyncpg
from aiogram import Bot
from aiogram.exceptions import ClientDecodeError, TelegramAPIError, TelegramBadRequest, TelegramForbiddenError

from shared import metrics
from shared.logs import get_logger
from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.generation.jobs import TenantHandle

log = get_logger(__name__)

REQUEST_TIMEOUT_SECONDS = 15
_BATCH = 50


class Answer(StrEnum):
    REFUNDED = "refunded"  # the Stars are back with the user (now, or by an earlier call)
    REFUSED = "refused"  # Telegram said no: nothing moved
    UNKNOWN = "unknown"  # no answer: ask again later


async def ask_telegram(tenant: TenantHandle, user_id: int, charge_id: str) -> tuple[Answer, str]:
    """refundStarPayment, and what its outcome means for the money; the text is for logs."""
    answer, detail = await _ask(tenant.bot, user_id, charge_id)
    metrics.STAR_REFUNDS.labels(tenant.config.slug, answer.value).inc()
    return answer, detail


async def _ask(bot: Bot, user_id: int, charge_id: str) -> tuple[Answer, str]:
    try:
        await bot.refund_star_payment(
            user_id=user_id, telegram_payment_charge_id=charge_id, request_timeout=REQUEST_TIMEOUT_SECONDS
        )
    except TelegramBadRequest as exc:
        if "CHARGE_ALREADY_REFUNDED" in exc.message:
            return Answer.REFUNDED, exc.message
        return Answer.REFUSED, exc.message
    except TelegramForbiddenError as exc:
        return Answer.REFUSED, exc.message
    except (TelegramAPIError, ClientDecodeError, TimeoutError) as exc:
        # ClientDecodeError: a reply that is not the Bot API's JSON (an HTML 502 from a proxy).
        return Answer.UNKNOWN, type(exc).__name__
    return Answer.REFUNDED, "ok"


class RefundSettler:
    """Asks Telegram again about refunds left 'refunding', for the tenants this process holds."""

    def __init__(self, pool: asyncpg.Pool, ledger: Ledger, *, settle_after: float) -> None:
        self._pool = pool
        self._ledger = ledger
        self._settle_after = settle_after

    @property
    def interval(self) -> float:
        """Seconds between two settling rounds."""
        return min(30.0, self._settle_after)

    async def settle_once(self, tenants: Mapping[int, TenantHandle]) -> int:
        """Settle what can be settled now; returns how many payments it settled."""
        if not tenants:
            return 0
        rows = await self._pool.fetch(
            """SELECT tenant_id, charge_id, user_id FROM star_payments
               WHERE status = 'refunding' AND tenant_id = ANY($1::bigint[])
                 AND refund_started_at < now() - make_interval(secs => $2)
               ORDER BY refund_started_at LIMIT $3""",
            list(tenants),
            self._settle_after,
            _BATCH,
        )
        settled = 0
        for row in rows:
            answer, detail = await ask_telegram(tenants[row["tenant_id"]], row["user_id"], row["charge_id"])
            if answer is Answer.UNKNOWN:
                log.warning(
                    "Stars refund still unanswered; will ask again",
                    tenant_id=row["tenant_id"],
                    charge_id=row["charge_id"],
                    error=detail,
                )
                continue
            if await self._ledger.finish_star_refund(row["tenant_id"], row["charge_id"], ok=answer is Answer.REFUNDED):
                settled += 1
                log.info(
                    "Stars refund settled",
                    tenant_id=row["tenant_id"],
                    charge_id=row["charge_id"],
                    outcome=answer.value,
                    detail=detail,
                )
        return settled
