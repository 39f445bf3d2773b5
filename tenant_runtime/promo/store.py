"""Promo codes in Postgres: create, list, disable, and redeem exactly once per user, never beyond max uses.

Redemption is one transaction that first locks the code's row (`FOR UPDATE`): redemptions of one code,
from any number of replicas, queue there one after the other, so the use count and the per-user check
read the truth. Then the user's redemption row (its primary key is "once per user") and, for money, a
ledger entry of kind `promo` keyed by code and user (the ledger's own unique key is a second guard).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

import asyncpg

from tenant_runtime.billing.ledger import CreditKind, Ledger
from tenant_runtime.moderation.audit import AuditAction, record
from tenant_runtime.promo.codes import PromoField, PromoInputError, PromoSpec, parse_code

__all__ = ["PROMO_KIND", "PromoCode", "RedeemOutcome", "Redemption", "codes", "create", "disable", "redeem"]

PROMO_KIND: CreditKind = "promo"  # the ledger kind of a promo's money


class RedeemOutcome(StrEnum):
    REDEEMED = "redeemed"
    UNKNOWN = "unknown"  # no such code (or not a code at all)
    DISABLED = "disabled"
    EXPIRED = "expired"
    USED_UP = "used_up"
    ALREADY_USED = "already_used"  # by this user


@dataclass(frozen=True)
class Redemption:
    outcome: RedeemOutcome
    code: str
    amount_minor: int | None = None
    free_generations: int | None = None
    available: int | None = None  # the user's balance right after, read in the same transaction


@dataclass(frozen=True)
class PromoCode:
    code: str
    amount_minor: int | None
    free_generations: int | None
    max_uses: int
    uses: int
    expires_at: datetime | None
    disabled_at: datetime | None
    created_by: str
    expired: bool  # by the database's clock when read
    valid_through: date | None = None  # the last day it is valid, in the tenant's zone (when listed)

    @property
    def active(self) -> bool:
        return self.disabled_at is None and not self.expired and self.uses < self.max_uses


def _promo(row: asyncpg.Record) -> PromoCode:
    return PromoCode(
        code=row["code"],
        amount_minor=row["amount_minor"],
        free_generations=row["free_generations"],
        max_uses=row["max_uses"],
        uses=row["uses"],
        expires_at=row["expires_at"],
        disabled_at=row["disabled_at"],
        created_by=row["created_by"],
        expired=row["expired"],
        valid_through=row.get("valid_through"),
    )


_SELECT = "SELECT *, coalesce(expires_at <= now(), false) AS expired FROM promo_codes"


async def create(pool: asyncpg.Pool, tenant_id: int, timezone: str, spec: PromoSpec, actor: str) -> PromoCode:
    """Raises PromoInputError (EXPIRED: the date has passed in the tenant's zone; EXISTS); nothing written."""
    async with pool.acquire() as conn, conn.transaction():
        # Valid through `expires_on` in the tenant's zone: it ends at the next midnight there.
        row = await conn.fetchrow(
            """INSERT INTO promo_codes (tenant_id, code, amount_minor, free_generations, max_uses, expires_at,
                    created_by)
                SELECT $1, $2, $3, $4, $5, timezone($7, ($6::date + 1)::timestamp), $8
                WHERE $6::date IS NULL OR timezone($7, ($6::date + 1)::timestamp) > now()
                ON CONFLICT (tenant_id, code) DO NOTHING
                RETURNING *, false AS expired""",
            tenant_id,
            spec.code,
            spec.amount_minor,
            spec.free_generations,
            spec.max_uses,
            spec.expires_on,
            timezone,
            actor,
        )
        if row is None:
            exists = await conn.fetchval(
                "SELECT 1 FROM promo_codes WHERE tenant_id = $1 AND code = $2", tenant_id, spec.code
            )
            if exists:
                raise PromoInputError(PromoField.EXISTS, spec.code)
            raise PromoInputError(PromoField.EXPIRED, str(spec.expires_on))
        await record(conn, tenant_id, actor, AuditAction.PROMO_CREATE, spec.code, _describe(spec))
    return _promo(row)


def _describe(spec: PromoSpec) -> str:
    value = f"amount {spec.amount_minor}" if spec.amount_minor else f"{spec.free_generations} free generations"
    return f"{value}, max uses {spec.max_uses}, expires {spec.expires_on or 'never'}"


async def codes(pool: asyncpg.Pool, tenant_id: int, timezone: str, limit: int = 50) -> list[PromoCode]:
    """The newest codes first, with the last day each is valid as the tenant's calendar shows it."""
    rows = await pool.fetch(
        """SELECT *, coalesce(expires_at <= now(), false) AS expired,
                  (timezone($2, expires_at) - interval '1 day')::date AS valid_through
           FROM promo_codes WHERE tenant_id = $1 ORDER BY created_at DESC, code LIMIT $3""",
        tenant_id,
        timezone,
        limit,
    )
    return [_promo(r) for r in rows]


async def disable(pool: asyncpg.Pool, tenant_id: int, code: str, actor: str) -> bool:
    """False when there is no such code or it was disabled before."""
    async with pool.acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            "UPDATE promo_codes SET disabled_at = now() WHERE tenant_id = $1 AND code = $2 AND disabled_at IS NULL "
            "RETURNING 1",
            tenant_id,
            code,
        )
        if done is None:
            return False
        await record(conn, tenant_id, actor, AuditAction.PROMO_DISABLE, code)
    return True


async def redeem(pool: asyncpg.Pool, ledger: Ledger, tenant_id: int, user_id: int, raw_code: str) -> Redemption:
    try:
        code = parse_code(raw_code)
    except PromoInputError:
        return Redemption(RedeemOutcome.UNKNOWN, raw_code.strip()[:32])
    async with pool.acquire() as conn, conn.transaction():
        # Redemptions of this code queue here, across replicas.
        promo = await conn.fetchrow(f"{_SELECT} WHERE tenant_id = $1 AND code = $2 FOR UPDATE", tenant_id, code)
        if promo is None:
            return Redemption(RedeemOutcome.UNKNOWN, code)
        used = await conn.fetchval(
            "SELECT 1 FROM promo_redemptions WHERE tenant_id = $1 AND code = $2 AND user_id = $3",
            tenant_id,
            code,
            user_id,
        )
        outcome = (
            RedeemOutcome.ALREADY_USED
            if used
            else RedeemOutcome.DISABLED
            if promo["disabled_at"] is not None
            else RedeemOutcome.EXPIRED
            if promo["expired"]
            else RedeemOutcome.USED_UP
            if promo["uses"] >= promo["max_uses"]
            else RedeemOutcome.REDEEMED
        )
        if outcome is not RedeemOutcome.REDEEMED:
            return Redemption(outcome, code)
        amount, generations = promo["amount_minor"], promo["free_generations"]
        await conn.execute(
            "INSERT INTO promo_redemptions (tenant_id, code, user_id, amount_minor, free_generations) "
            "VALUES ($1, $2, $3, $4, $5)",
            tenant_id,
            code,
            user_id,
            amount,
            generations,
        )
        await conn.execute("UPDATE promo_codes SET uses = uses + 1 WHERE tenant_id = $1 AND code = $2", tenant_id, code)
        if amount is not None:
            await ledger.credit(
                tenant_id,
                user_id,
                amount,
                kind=PROMO_KIND,
                unique_key=f"promo:{code}:{user_id}",
                actor=f"user:{user_id}",
                reason=f"promo code {code}",
                conn=conn,
            )
        balance = await ledger.balance(tenant_id, user_id, conn=conn)
    return Redemption(RedeemOutcome.REDEEMED, code, amount, generations, balance.available)
