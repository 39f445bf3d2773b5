"""User balances in minor units (kopecks), per tenant, with an append-only ledger.

Every movement writes one `ledger_entries` row in the same transaction as the balance change it
records. `amount` is always positive; the direction of each kind is fixed by the schema's generated
`available_delta`/`held_delta` columns (`_DELTAS` below mirrors them):

    topup, admin_credit, bonus_welcome, bonus_referral, refund_reverted   available +
    admin_debit, refund                                                   available -
    hold                                                                  available -, held +
    commit                                                                held -  (money is spent)
    release, expiry                                                       held -, available +

Balances only change through one conditional UPDATE (`available + delta >= 0`), so concurrent
debits never overdraw. Every statement names the tenant. Methods take an optional `conn` to join the
caller's transaction (they run in a savepoint there); without it they use their own transaction.
Actors are 'system', 'user:<id>', 'admin:<id>' or 'operator:<name>' (enforced by the schema).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

Kind = Literal[
    "topup",
    "admin_credit",
    "bonus_welcome",
    "bonus_referral",
    "refund_reverted",
    "admin_debit",
    "refund",
    "hold",
    "commit",
    "release",
    "expiry",
]
CreditKind = Literal["admin_credit", "bonus_welcome", "bonus_referral"]
HoldStatus = Literal["pending", "committed", "released", "expired"]

# (available, held) sign per kind; must match the generated columns in sql/003_billing.sql.
_DELTAS: dict[Kind, tuple[int, int]] = {
    "topup": (1, 0),
    "admin_credit": (1, 0),
    "bonus_welcome": (1, 0),
    "bonus_referral": (1, 0),
    "refund_reverted": (1, 0),
    "admin_debit": (-1, 0),
    "refund": (-1, 0),
    "hold": (-1, 1),
    "commit": (0, -1),
    "release": (1, -1),
    "expiry": (1, -1),
}
_CREDIT_KINDS: frozenset[str] = frozenset({"admin_credit", "bonus_welcome", "bonus_referral"})
_RESOLVED_STATUS: dict[Kind, HoldStatus] = {"commit": "committed", "release": "released", "expiry": "expired"}


class LedgerError(Exception):
    """A money operation was refused; nothing was written. The message is safe to show to an admin."""


class InvalidRequest(LedgerError, ValueError):
    """Bad arguments (non-positive amount, missing reason, ...): a caller bug, not a business outcome."""


class InsufficientFunds(LedgerError):
    def __init__(self, available: int, required: int) -> None:
        super().__init__(f"insufficient funds: {available} available, {required} required")
        self.available = available
        self.required = required

    @property
    def missing(self) -> int:
        return self.required - self.available


class IdempotencyConflict(LedgerError):
    """The idempotency key was already used for a different operation."""


class RefundRefused(LedgerError):
    def __init__(self, message: str, *, spent: int | None = None) -> None:
        super().__init__(message)
        self.spent = spent


class _AlreadyApplied(LedgerError):
    """A concurrent transaction recorded the same unique key first; ours is rolled back."""


@dataclass(frozen=True)
class Balance:
    available: int
    held: int


@dataclass(frozen=True)
class Hold:
    id: int
    tenant_id: int
    user_id: int
    amount: int
    idempotency_key: str
    status: HoldStatus
    expires_at: datetime
    correlation_id: str | None
    created_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    tenant_id: int
    user_id: int
    kind: Kind
    amount: int
    available_delta: int
    held_delta: int
    hold_id: int | None
    unique_key: str | None
    reference: str | None
    correlation_id: str | None
    actor: str
    reason: str | None
    available_after: int
    held_after: int
    created_at: datetime


@dataclass(frozen=True)
class Discrepancy:
    """An account whose balances disagree with its ledger sum or (for `held`) its pending holds."""

    tenant_id: int
    user_id: int
    available: int
    held: int
    ledger_available: int
    ledger_held: int
    pending_held: int


@dataclass(frozen=True)
class StarRefund:
    """A refund debited and marked 'refunding': call refundStarPayment(user_id, charge_id), then finish."""

    tenant_id: int
    charge_id: str
    user_id: int
    stars: int
    amount_minor: int


def _require_amount(amount: int) -> None:
    # bool is an int, and a float or Decimal here means someone skipped pricing.user_price.
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidRequest(f"amount must be a positive whole number of minor units, got {amount!r}")


def _require_text(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise InvalidRequest(f"{what} is required")
    return value


_HOLD_COLUMNS = (
    "id, tenant_id, user_id, amount, idempotency_key, status, expires_at, correlation_id, created_at, resolved_at"
)
_ENTRY_COLUMNS = (
    "id, tenant_id, user_id, kind, amount, available_delta, held_delta, hold_id, unique_key, "
    "reference, correlation_id, actor, reason, available_after, held_after, created_at"
)


class Ledger:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def _transaction(self, conn: asyncpg.Connection | None) -> AsyncIterator[asyncpg.Connection]:
        if conn is None:
            async with self._pool.acquire() as own, own.transaction():
                yield own
        else:
            # A savepoint: our failure leaves the caller's transaction usable.
            async with conn.transaction():
                yield conn

    @asynccontextmanager
    async def _reading(self, conn: asyncpg.Connection | None) -> AsyncIterator[asyncpg.Connection]:
        if conn is None:
            async with self._pool.acquire() as own:
                yield own
        else:
            yield conn

    # -- the one primitive that changes a balance ------------------------------------------------

    @staticmethod
    async def _ensure_account(conn: asyncpg.Connection, tenant_id: int, user_id: int) -> None:
        await conn.execute(
            "INSERT INTO accounts (tenant_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", tenant_id, user_id
        )

    @staticmethod
    async def _move(
        conn: asyncpg.Connection,
        tenant_id: int,
        user_id: int,
        kind: Kind,
        amount: int,
        *,
        actor: str,
        unique_key: str | None = None,
        hold_id: int | None = None,
        reference: str | None = None,
        correlation_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        sign_available, sign_held = _DELTAS[kind]
        after = await conn.fetchrow(
            "UPDATE accounts SET available = available + $3, held = held + $4, updated_at = now() "
            "WHERE tenant_id = $1 AND user_id = $2 AND available + $3 >= 0 RETURNING available, held",
            tenant_id,
            user_id,
            sign_available * amount,
            sign_held * amount,
        )
        if after is None:
            available = await conn.fetchval(
                "SELECT available FROM accounts WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id
            )
            raise InsufficientFunds(available or 0, amount)
        entry_id = await conn.fetchval(
            """INSERT INTO ledger_entries (tenant_id, user_id, kind, amount, hold_id, unique_key, reference,
                   correlation_id, actor, reason, available_after, held_after)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
               ON CONFLICT (tenant_id, kind, unique_key) DO NOTHING RETURNING id""",
            tenant_id,
            user_id,
            kind,
            amount,
            hold_id,
            unique_key,
            reference,
            correlation_id,
            actor,
            reason,
            after["available"],
            after["held"],
        )
        if entry_id is None:
            raise _AlreadyApplied(f"{kind} {unique_key!r} was already recorded")

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
        except _AlreadyApplied:
            # The same key raced in for another account; the unique index kept it to one.
            return False
        return True

    # -- credits and admin debits ----------------------------------------------------------------

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
        _require_amount(amount)
        if kind not in _CREDIT_KINDS:
            raise InvalidRequest(f"credit kind must be one of {sorted(_CREDIT_KINDS)}, got {kind!r}")
        _require_text(unique_key, "unique_key")
        if kind == "admin_credit":
            _require_text(reason, "a reason for the admin credit")
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
        _require_amount(amount)
        _require_text(unique_key, "unique_key")
        _require_text(reason, "a reason for the admin debit")
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
            kind="bonus_welcome",
            unique_key=f"welcome:{user_id}",
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
        if referrer_id == new_user_id:
            raise InvalidRequest("a user cannot be their own referrer")
        if amount == 0:
            return False
        return await self.credit(
            tenant_id,
            referrer_id,
            amount,
            kind="bonus_referral",
            unique_key=f"referral:{new_user_id}",
            actor="system",
            reason=f"referral of user {new_user_id}",
            conn=conn,
        )

    # -- two-phase holds -------------------------------------------------------------------------

    async def reserve(
        self,
        tenant_id: int,
        user_id: int,
        amount: int,
        idempotency_key: str,
        *,
        correlation_id: str | None,
        actor: str,
        ttl_seconds: int,
        conn: asyncpg.Connection | None = None,
    ) -> Hold:
        """Move `amount` from available to held. The same key returns the same hold, whatever its status."""
        _require_amount(amount)
        _require_text(idempotency_key, "idempotency_key")
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0:
            raise InvalidRequest(f"ttl_seconds must be a positive integer, got {ttl_seconds!r}")
        async with self._transaction(conn) as c:
            await self._ensure_account(c, tenant_id, user_id)
            # The hold row goes first: a concurrent reserve with this key waits on it and then finds it.
            row = await c.fetchrow(
                f"""INSERT INTO holds (tenant_id, user_id, amount, idempotency_key, expires_at, correlation_id)
                    VALUES ($1, $2, $3, $4, now() + $5 * interval '1 second', $6)
                    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING {_HOLD_COLUMNS}""",
                tenant_id,
                user_id,
                amount,
                idempotency_key,
                ttl_seconds,
                correlation_id,
            )
            if row is None:
                existing = await c.fetchrow(
                    f"SELECT {_HOLD_COLUMNS} FROM holds WHERE tenant_id = $1 AND idempotency_key = $2",
                    tenant_id,
                    idempotency_key,
                )
                if (existing["user_id"], existing["amount"]) != (user_id, amount):
                    raise IdempotencyConflict(
                        f"idempotency key {idempotency_key!r} already holds {existing['amount']} "
                        f"for user {existing['user_id']}"
                    )
                return Hold(**existing)
            await self._move(
                c,
                tenant_id,
                user_id,
                "hold",
                amount,
                actor=actor,
                hold_id=row["id"],
                reference=f"hold:{row['id']}",
                correlation_id=correlation_id,
            )
        return Hold(**row)

    async def commit(self, tenant_id: int, hold_id: int, conn: asyncpg.Connection | None = None) -> bool:
        """Spend a pending hold. False if it was already resolved (or is not this tenant's)."""
        async with self._transaction(conn) as c:
            return await self._resolve(c, tenant_id, hold_id, "commit")

    async def release(
        self,
        tenant_id: int,
        hold_id: int,
        *,
        kind: Literal["release", "expiry"] = "release",
        conn: asyncpg.Connection | None = None,
    ) -> bool:
        """Return a pending hold to available. False if it was already resolved (or is not this tenant's)."""
        if kind not in ("release", "expiry"):
            raise InvalidRequest(f"release kind must be 'release' or 'expiry', got {kind!r}")
        async with self._transaction(conn) as c:
            return await self._resolve(c, tenant_id, hold_id, kind)

    async def _resolve(self, conn: asyncpg.Connection, tenant_id: int, hold_id: int, kind: Kind) -> bool:
        # The status guard makes resolution happen once: a concurrent resolver waits on the row lock,
        # then finds the status changed and matches nothing.
        hold = await conn.fetchrow(
            "UPDATE holds SET status = $3, resolved_at = now() "
            "WHERE tenant_id = $1 AND id = $2 AND status = 'pending' RETURNING user_id, amount, correlation_id",
            tenant_id,
            hold_id,
            _RESOLVED_STATUS[kind],
        )
        if hold is None:
            return False
        await self._move(
            conn,
            tenant_id,
            hold["user_id"],
            kind,
            hold["amount"],
            actor="system",
            hold_id=hold_id,
            reference=f"hold:{hold_id}",
            correlation_id=hold["correlation_id"],
        )
        return True

    async def expire_holds(self, tenant_id: int | None = None, now: datetime | None = None) -> int:
        """Release pending holds past expires_at (as of `now`, default the database clock).

        One hold per transaction, claimed with SKIP LOCKED: sweepers in several processes share the work,
        and no transaction ever locks two accounts, so they cannot deadlock with each other or with users.
        """
        expired = 0
        async with self._pool.acquire() as conn:
            while True:
                async with conn.transaction():
                    claimed = await conn.fetchrow(
                        """SELECT tenant_id, id FROM holds
                           WHERE status = 'pending' AND expires_at <= coalesce($1::timestamptz, now())
                             AND ($2::bigint IS NULL OR tenant_id = $2)
                           ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED""",
                        now,
                        tenant_id,
                    )
                    if claimed is None:
                        return expired
                    if await self._resolve(conn, claimed["tenant_id"], claimed["id"], "expiry"):
                        expired += 1

    # -- Telegram Stars --------------------------------------------------------------------------

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
        _require_amount(amount_minor)
        _require_text(charge_id, "charge_id")
        if isinstance(stars, bool) or not isinstance(stars, int) or stars <= 0:
            raise InvalidRequest(f"stars must be a positive integer, got {stars!r}")
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
                    raise IdempotencyConflict(f"charge {charge_id!r} was recorded for another user or amount")
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

    # -- reading ---------------------------------------------------------------------------------

    async def balance(self, tenant_id: int, user_id: int, *, conn: asyncpg.Connection | None = None) -> Balance:
        async with self._reading(conn) as c:
            row = await c.fetchrow(
                "SELECT available, held FROM accounts WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id
            )
        return Balance(0, 0) if row is None else Balance(row["available"], row["held"])

    async def committed_today(self, tenant_id: int) -> int:
        """What users of a tenant paid for generations today (UTC), in minor units."""
        total = await self._pool.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE tenant_id = $1 AND kind = 'commit' "
            "AND created_at >= date_trunc('day', now())",
            tenant_id,
        )
        return int(total)

    async def history(
        self,
        tenant_id: int,
        user_id: int,
        limit: int = 20,
        offset: int = 0,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> list[LedgerEntry]:
        """Newest first."""
        async with self._reading(conn) as c:
            rows = await c.fetch(
                f"""SELECT {_ENTRY_COLUMNS} FROM ledger_entries WHERE tenant_id = $1 AND user_id = $2
                    ORDER BY id DESC LIMIT $3 OFFSET $4""",
                tenant_id,
                user_id,
                limit,
                offset,
            )
        return [LedgerEntry(**r) for r in rows]

    async def reconcile(self, tenant_id: int | None = None) -> list[Discrepancy]:
        """Accounts whose (available, held) differ from their ledger sums, or whose held differs from the
        sum of their pending holds. Empty means consistent. One statement, so one consistent snapshot."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """WITH sums AS (
                       SELECT tenant_id, user_id, sum(available_delta)::bigint AS available,
                              sum(held_delta)::bigint AS held
                       FROM ledger_entries WHERE $1::bigint IS NULL OR tenant_id = $1
                       GROUP BY tenant_id, user_id),
                   pending AS (
                       SELECT tenant_id, user_id, sum(amount)::bigint AS held FROM holds
                       WHERE status = 'pending' AND ($1::bigint IS NULL OR tenant_id = $1)
                       GROUP BY tenant_id, user_id)
                   SELECT a.tenant_id, a.user_id, a.available, a.held,
                          coalesce(s.available, 0) AS ledger_available, coalesce(s.held, 0) AS ledger_held,
                          coalesce(p.held, 0) AS pending_held
                   FROM accounts a
                   LEFT JOIN sums s USING (tenant_id, user_id)
                   LEFT JOIN pending p USING (tenant_id, user_id)
                   WHERE ($1::bigint IS NULL OR a.tenant_id = $1)
                     AND (a.available <> coalesce(s.available, 0) OR a.held <> coalesce(s.held, 0)
                          OR a.held <> coalesce(p.held, 0))
                   ORDER BY a.tenant_id, a.user_id""",
                tenant_id,
            )
        return [Discrepancy(**r) for r in rows]
