"""Telegram Stars: a payment credited once per charge id, and a refund in two steps around Telegram's call."""

from __future__ import annotations

import asyncpg

from tenant_runtime.billing.ledger.core import LedgerBase
from tenant_runtime.billing.ledger.errors import (
    ChargeConflict,
    InsufficientFunds,
    RefundRefused,
    require_amount,
    require_positive,
    require_text,
)
from tenant_runtime.billing.ledger.records import StarRefund


class StarPayments(LedgerBase):
    async def record_star_payment(
        self,
        tenant_id: int,
        user_id: int,
        charge_id: str,
        stars: int,
        amount_minor: int,
        payload: str,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> bool:
        """Credit a successful payment once per charge id: True if credited now, False if already."""
        require_amount(amount_minor)
        require_text(charge_id, "charge_id")
        require_positive(stars, "stars")
        async with self._transaction(conn) as c:
            await self._ensure_account(c, tenant_id, user_id)
            # A second delivery (another process, a redelivered update) waits here and then does nothing.
            inserted = await c.fetchval(
                """INSERT INTO star_payments (tenant_id, charge_id, user_id, stars, amount_minor, payload)
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING 1""",
                tenant_id,
                charge_id,
                user_id,
                stars,
                amount_minor,
                payload,
            )
            if inserted is None:
                first = await c.fetchrow(
                    "SELECT user_id, amount_minor FROM star_payments WHERE tenant_id = $1 AND charge_id = $2",
                    tenant_id,
                    charge_id,
                )
                if (first["user_id"], first["amount_minor"]) != (user_id, amount_minor):
                    raise ChargeConflict(charge_id, first["user_id"], first["amount_minor"])
                return False
            await self._move(
                c,
                tenant_id,
                user_id,
                "topup",
                amount_minor,
                actor=f"user:{user_id}",
                unique_key=f"star:{charge_id}",
                reference=f"star:{charge_id}",
                reason=f"{stars} Telegram Stars",
            )
        return True

    async def begin_star_refund(
        self,
        tenant_id: int,
        charge_id: str,
        admin_id: int,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> StarRefund:
        """Debit the payment's credit and mark it 'refunding', before asking Telegram to refund."""
        async with self._transaction(conn) as c:
            payment = await c.fetchrow(
                """SELECT user_id, stars, amount_minor, status, refund_attempts FROM star_payments
                   WHERE tenant_id = $1 AND charge_id = $2 FOR UPDATE""",
                tenant_id,
                charge_id,
            )
            if payment is None:
                raise RefundRefused(f"no Stars payment {charge_id!r} in this bot")
            if payment["status"] == "refunded":
                raise RefundRefused("this payment has already been refunded")
            if payment["status"] == "refunding":
                raise RefundRefused("a refund of this payment is already in progress")
            attempt = payment["refund_attempts"] + 1
            try:
                await self._move(
                    c,
                    tenant_id,
                    payment["user_id"],
                    "refund",
                    payment["amount_minor"],
                    actor=f"admin:{admin_id}",
                    unique_key=f"star:{charge_id}#{attempt}",
                    reference=f"star:{charge_id}",
                    reason="Telegram Stars refund",
                )
            except InsufficientFunds as exc:
                raise RefundRefused(
                    f"cannot refund: the user has already spent {exc.missing} of it", spent=exc.missing
                ) from None
            await c.execute(
                """UPDATE star_payments
                   SET status = 'refunding', refund_attempts = $3, refunded_by = $4, refund_started_at = now()
                   WHERE tenant_id = $1 AND charge_id = $2""",
                tenant_id,
                charge_id,
                attempt,
                admin_id,
            )
        return StarRefund(tenant_id, charge_id, payment["user_id"], payment["stars"], payment["amount_minor"])

    async def finish_star_refund(
        self,
        tenant_id: int,
        charge_id: str,
        ok: bool,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> bool:
        """Record Telegram's answer: ok → 'refunded'; a definite failure → credit back, 'paid' again.

        An unknown outcome (timeout) must not be reported as a failure: if Telegram did refund, crediting
        back would pay the user twice. Leave it 'refunding' and check. False if not 'refunding'.
        """
        async with self._transaction(conn) as c:
            payment = await c.fetchrow(
                """SELECT user_id, amount_minor, refund_attempts, refunded_by FROM star_payments
                   WHERE tenant_id = $1 AND charge_id = $2 AND status = 'refunding' FOR UPDATE""",
                tenant_id,
                charge_id,
            )
            if payment is None:
                return False
            if ok:
                await c.execute(
                    "UPDATE star_payments SET status = 'refunded', refunded_at = now() "
                    "WHERE tenant_id = $1 AND charge_id = $2",
                    tenant_id,
                    charge_id,
                )
                return True
            await self._move(
                c,
                tenant_id,
                payment["user_id"],
                "refund_reverted",
                payment["amount_minor"],
                actor=f"admin:{payment['refunded_by']}",
                unique_key=f"star:{charge_id}#{payment['refund_attempts']}",
                reference=f"star:{charge_id}",
                reason="Telegram refused the Stars refund",
            )
            await c.execute(
                "UPDATE star_payments SET status = 'paid', refunded_by = NULL, refund_started_at = NULL "
                "WHERE tenant_id = $1 AND charge_id = $2",
                tenant_id,
                charge_id,
            )
        return True
