"""Credits (bonuses, promo, admin credits) and admin debits, each applied once per unique key."""

from __future__ import annotations

import asyncpg

from tenant_runtime.billing.ledger.core import LedgerBase
from tenant_runtime.billing.ledger.errors import AlreadyApplied, InvalidRequest, require_amount, require_text
from tenant_runtime.billing.ledger.kinds import CREDIT_KINDS, WELCOME_KIND, CreditKind, Kind, welcome_key

# The unique key of a referrer's bonus ends with the referred user's id: one referral pays once.
REFERRER_KEY = "referral:"


class Credits(LedgerBase):
    async def _apply_once(
        self,
        conn: asyncpg.Connection | None,
        tenant_id: int,
        user_id: int,
        kind: Kind,
        amount: int,
        *,
        unique_key: str,
        actor: str,
        reason: str | None,
        correlation_id: str | None,
    ) -> bool:
        try:
            async with self._transaction(conn) as c:
                await self._ensure_account(c, tenant_id, user_id)
                # Retries of one key for one user queue here, then see the first one's entry.
                await c.execute(
                    "SELECT 1 FROM accounts WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE", tenant_id, user_id
                )
                if await c.fetchval(
                    "SELECT 1 FROM ledger_entries WHERE tenant_id = $1 AND kind = $2 AND unique_key = $3",
                    tenant_id,
                    kind,
                    unique_key,
                ):
                    return False
                await self._move(
                    c,
                    tenant_id,
                    user_id,
                    kind,
                    amount,
                    actor=actor,
                    unique_key=unique_key,
                    reason=reason,
                    correlation_id=correlation_id,
                )
        except AlreadyApplied:
            # The same key raced in for another account; the unique index kept it to one.
            return False
        return True

    async def credit(
        self,
        tenant_id: int,
        user_id: int,
        amount: int,
        *,
        kind: CreditKind,
        unique_key: str,
        actor: str,
        reason: str | None = None,
        correlation_id: str | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> bool:
        """Add to `available` once per (tenant, kind, unique_key): True if applied now, False if before."""
        require_amount(amount)
        if kind not in CREDIT_KINDS:
            raise InvalidRequest(f"credit kind must be one of {sorted(CREDIT_KINDS)}, got {kind!r}")
        require_text(unique_key, "unique_key")
        if kind == "admin_credit":
            require_text(reason, "a reason for the admin credit")
        return await self._apply_once(
            conn,
            tenant_id,
            user_id,
            kind,
            amount,
            unique_key=unique_key,
            actor=actor,
            reason=reason,
            correlation_id=correlation_id,
        )

    async def debit(
        self,
        tenant_id: int,
        user_id: int,
        amount: int,
        *,
        unique_key: str,
        actor: str,
        reason: str,
        correlation_id: str | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> bool:
        """Admin deduction from `available`, once per key; never below zero (raises InsufficientFunds)."""
        require_amount(amount)
        require_text(unique_key, "unique_key")
        require_text(reason, "a reason for the admin debit")
        return await self._apply_once(
            conn,
            tenant_id,
            user_id,
            "admin_debit",
            amount,
            unique_key=unique_key,
            actor=actor,
            reason=reason,
            correlation_id=correlation_id,
        )

    async def grant_welcome_bonus(
        self,
        tenant_id: int,
        user_id: int,
        amount: int,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> bool:
        """Once per user and tenant. A tenant without a bonus (0) grants nothing."""
        if amount == 0:
            return False
        return await self.credit(
            tenant_id,
            user_id,
            amount,
            kind=WELCOME_KIND,
            unique_key=welcome_key(user_id),
            actor="system",
            reason="welcome bonus",
            conn=conn,
        )

    async def grant_referral_bonus(
        self,
        tenant_id: int,
        referrer_id: int,
        new_user_id: int,
        amount: int,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> bool:
        """Credit the referrer once per referred user; keyed by the new user, so one referral pays once."""
        return await self._referral(
            tenant_id, referrer_id, new_user_id, amount, referrer_id, f"referral of user {new_user_id}", conn
        )

    async def grant_invited_bonus(self, tenant_id: int, new_user_id: int, referrer_id: int, amount: int) -> bool:
        """Credit the user who joined with a referral link, once (keyed by that user)."""
        reason = f"joined with the referral link of user {referrer_id}"
        return await self._referral(tenant_id, referrer_id, new_user_id, amount, new_user_id, reason, None)

    async def _referral(
        self,
        tenant_id: int,
        referrer_id: int,
        new_user_id: int,
        amount: int,
        paid: int,
        reason: str,
        conn: asyncpg.Connection | None,
    ) -> bool:
        """One side of a referral: the referrer (`referral:<new user>`) or the newcomer (`referral_invited:...`)."""
        if referrer_id == new_user_id:
            raise InvalidRequest("a user cannot be their own referrer")
        if amount == 0:
            return False
        side = REFERRER_KEY if paid == referrer_id else "referral_invited:"
        return await self.credit(
            tenant_id,
            paid,
            amount,
            kind="bonus_referral",
            unique_key=f"{side}{new_user_id}",
            actor="system",
            reason=reason,
            conn=conn,
        )
