"""A stateful hypothesis test of the ledger against real Postgres and a pure-Python model.

Hypothesis drives synchronous rules; the asyncpg pool lives on its own event loop in a thread, and
each rule runs its coroutine there. Every example gets a fresh tenant; a bystander tenant with the
same user ids must never change.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from shared.db import create_pool
from tenant_runtime.billing.ledger import Balance, IdempotencyConflict, InsufficientFunds, Ledger, RefundRefused
from tests.helpers import LoopThread

T = TypeVar("T")

USERS = (101, 102)
STAR_PRICE = 150  # minor units per Star in this test


@dataclass
class Env:
    loop: LoopThread
    pool: asyncpg.Pool
    ledger: Ledger
    bystander: int


async def _make_tenant(pool: asyncpg.Pool) -> int:
    tenant_id: int = await pool.fetchval(
        """INSERT INTO tenants (slug, display_name, bot_id, bot_token_enc, webhook_secret_enc, callback_secret_enc)
           VALUES ($1, 'Ledger property test', $2, 'x', 'x', 'x') RETURNING id""",
        f"ledger-prop-{secrets.token_hex(5)}",
        secrets.randbelow(10**15),
    )
    return tenant_id


@pytest.fixture(scope="module")
def env(database_url: str) -> Iterator[Env]:
    loop = LoopThread()
    pool = loop.run(create_pool(database_url, 4, application_name="tests-ledger-properties"))
    ledger = Ledger(pool)
    bystander = loop.run(_make_tenant(pool))
    for user in USERS:
        loop.run(
            ledger.credit(
                bystander, user, 1000, kind="admin_credit", unique_key=f"seed:{user}", actor="admin:1", reason="seed"
            )
        )
    yield Env(loop, pool, ledger, bystander)
    loop.run(pool.close())
    loop.close()


@dataclass
class ModelHold:
    user: int
    amount: int
    key: str
    expires_at: datetime
    status: str = "pending"


@dataclass
class ModelPayment:
    user: int
    amount: int
    status: str = "paid"


users = st.sampled_from(USERS)
amounts = st.integers(min_value=1, max_value=300)
charges = st.sampled_from(["c0", "c1", "c2"])


class LedgerMachine(RuleBasedStateMachine):
    holds = Bundle("holds")

    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env
        self.ledger = env.ledger
        self.tenant = env.loop.run(_make_tenant(env.pool))
        self.available = dict.fromkeys(USERS, 0)
        self.held = dict.fromkeys(USERS, 0)
        self.model_holds: dict[int, ModelHold] = {}
        self.hold_by_key: dict[str, int] = {}
        self.applied_keys: set[tuple[str, str]] = set()
        self.payments: dict[str, ModelPayment] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.env.loop.run(coro)

    @initialize(funds=st.lists(st.integers(0, 1500), min_size=len(USERS), max_size=len(USERS)))
    def open_accounts(self, funds: list[int]) -> None:
        for user, amount in zip(USERS, funds, strict=True):
            if amount:
                assert self.run(
                    self.ledger.credit(
                        self.tenant,
                        user,
                        amount,
                        kind="admin_credit",
                        unique_key=f"open:{user}",
                        actor="admin:7",
                        reason="opening",
                    )
                )
                self.applied_keys.add(("admin_credit", f"open:{user}"))
                self.available[user] += amount

    # -- credits ---------------------------------------------------------------------------------

    @rule(
        user=users,
        amount=st.integers(1, 1000),
        kind=st.sampled_from(["admin_credit", "bonus_welcome"]),
        key=st.sampled_from(["k0", "k1", "k2", "k3"]),
    )
    def topup(self, user: int, amount: int, kind: str, key: str) -> None:
        def attempt() -> bool:
            return self.run(
                self.ledger.credit(
                    self.tenant,
                    user,
                    amount,
                    kind=kind,  # type: ignore[arg-type]
                    unique_key=key,
                    actor="admin:7",
                    reason="top-up",
                )
            )

        expected = (kind, key) not in self.applied_keys
        assert attempt() == expected
        assert attempt() is False  # the retry
        if expected:
            self.applied_keys.add((kind, key))
            self.available[user] += amount

    @rule(user=users, amount=amounts, key=st.sampled_from(["d0", "d1", "d2"]))
    def admin_debit(self, user: int, amount: int, key: str) -> None:
        def attempt() -> bool:
            return self.run(
                self.ledger.debit(self.tenant, user, amount, unique_key=key, actor="admin:7", reason="correction")
            )

        if ("admin_debit", key) in self.applied_keys:
            assert attempt() is False
        elif self.available[user] < amount:
            with pytest.raises(InsufficientFunds):
                attempt()
        else:
            assert attempt() is True
            self.applied_keys.add(("admin_debit", key))
            self.available[user] -= amount

    # -- holds -----------------------------------------------------------------------------------

    @rule(
        target=holds,
        user=users,
        amount=amounts,
        key=st.sampled_from([f"job{i}" for i in range(16)]),
        ttl=st.sampled_from([60, 600, 3600]),
    )
    def reserve(self, user: int, amount: int, key: str, ttl: int) -> object:
        def attempt() -> Any:
            return self.run(
                self.ledger.reserve(
                    self.tenant, user, amount, key, correlation_id=key, actor=f"user:{user}", ttl_seconds=ttl
                )
            )

        known = self.hold_by_key.get(key)
        if known is not None:
            model = self.model_holds[known]
            if (model.user, model.amount) == (user, amount):
                assert attempt().id == known
            else:
                with pytest.raises(IdempotencyConflict):
                    attempt()
            return multiple()
        if self.available[user] < amount:
            with pytest.raises(InsufficientFunds) as caught:
                attempt()
            assert (caught.value.available, caught.value.required) == (self.available[user], amount)
            return multiple()
        hold = attempt()
        assert attempt().id == hold.id  # the retry is the same hold and moves nothing
        self.model_holds[hold.id] = ModelHold(user, amount, key, hold.expires_at)
        self.hold_by_key[key] = hold.id
        self.available[user] -= amount
        self.held[user] += amount
        return hold.id

    @rule(hold_id=holds, extra=st.integers(min_value=1, max_value=50))
    def reserve_same_key_other_amount(self, hold_id: int, extra: int) -> None:
        model = self.model_holds[hold_id]
        with pytest.raises(IdempotencyConflict):
            self.run(
                self.ledger.reserve(
                    self.tenant,
                    model.user,
                    model.amount + extra,
                    model.key,
                    correlation_id=None,
                    actor="system",
                    ttl_seconds=60,
                )
            )

    def _resolve(self, hold_id: int, spent: bool, won: bool) -> None:
        model = self.model_holds[hold_id]
        assert won == (model.status == "pending")
        if won:
            model.status = "committed" if spent else "released"
            self.held[model.user] -= model.amount
            if not spent:
                self.available[model.user] += model.amount

    @rule(hold_id=holds)
    def commit(self, hold_id: int) -> None:
        self._resolve(hold_id, spent=True, won=self.run(self.ledger.commit(self.tenant, hold_id)))

    @rule(hold_id=holds)
    def release(self, hold_id: int) -> None:
        self._resolve(hold_id, spent=False, won=self.run(self.ledger.release(self.tenant, hold_id)))

    @rule(hold_id=holds, early=st.booleans())
    def expire(self, hold_id: int, early: bool) -> None:
        # The sweeper's clock set to this hold's deadline (or just before): what is due by then expires.
        now = self.model_holds[hold_id].expires_at - (timedelta(microseconds=1) if early else timedelta(0))
        due = [m for m in self.model_holds.values() if m.status == "pending" and m.expires_at <= now]
        assert self.run(self.ledger.expire_holds(self.tenant, now=now)) == len(due)
        for model in due:
            model.status = "expired"
            self.held[model.user] -= model.amount
            self.available[model.user] += model.amount

    @rule(hold_id=holds)
    def expire_on_the_database_clock(self, hold_id: int) -> None:
        # The production sweep: no clock passed in, the database's now() decides. This hold's deadline is
        # moved into the past on that clock; every other pending hold of the model is hours away.
        self.run(
            self.env.pool.execute(
                "UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = $1 AND status = 'pending'",
                hold_id,
            )
        )
        self.run(self.ledger.expire_holds())
        model = self.model_holds[hold_id]
        if model.status == "pending":
            model.status = "expired"
            self.held[model.user] -= model.amount
            self.available[model.user] += model.amount
        model.expires_at = self.run(self.env.pool.fetchval("SELECT expires_at FROM holds WHERE id = $1", hold_id))

    # -- Telegram Stars --------------------------------------------------------------------------

    @rule(user=users, charge=charges, stars=st.integers(1, 5))
    def star_payment(self, user: int, charge: str, stars: int) -> None:
        def attempt() -> bool:
            return self.run(
                self.ledger.record_star_payment(
                    self.tenant, user, charge, stars, stars * STAR_PRICE, f"payload-{charge}"
                )
            )

        known = self.payments.get(charge)
        if known is not None and (known.user, known.amount) != (user, stars * STAR_PRICE):
            with pytest.raises(IdempotencyConflict):
                attempt()
            return
        assert attempt() is (known is None)
        assert attempt() is False  # the same successful_payment delivered again
        if known is None:
            self.payments[charge] = ModelPayment(user, stars * STAR_PRICE)
            self.available[user] += stars * STAR_PRICE

    @rule(charge=charges)
    def begin_refund(self, charge: str) -> None:
        payment = self.payments.get(charge)
        if payment is None or payment.status != "paid" or self.available[payment.user] < payment.amount:
            with pytest.raises(RefundRefused) as caught:
                self.run(self.ledger.begin_star_refund(self.tenant, charge, admin_id=7))
            if payment is not None and payment.status == "paid":
                assert caught.value.spent == payment.amount - self.available[payment.user]
            return
        refund = self.run(self.ledger.begin_star_refund(self.tenant, charge, admin_id=7))
        assert (refund.user_id, refund.amount_minor) == (payment.user, payment.amount)
        payment.status = "refunding"
        self.available[payment.user] -= payment.amount

    @rule(charge=charges, ok=st.booleans())
    def finish_refund(self, charge: str, ok: bool) -> None:
        payment = self.payments.get(charge)
        finished = self.run(self.ledger.finish_star_refund(self.tenant, charge, ok))
        assert finished == (payment is not None and payment.status == "refunding")
        if payment is not None and finished:
            payment.status = "refunded" if ok else "paid"
            if not ok:
                self.available[payment.user] += payment.amount

    # -- invariants ------------------------------------------------------------------------------

    @invariant()
    def database_matches_model(self) -> None:
        facts = self.run(self._facts())
        for user in USERS:
            assert facts["balances"][user] == Balance(self.available[user], self.held[user]), user
            assert self.available[user] >= 0 and self.held[user] >= 0
            last = facts["last_after"].get(user)
            assert last is None or last == (self.available[user], self.held[user])
            assert facts["bystander"][user] == Balance(1000, 0)
        assert facts["discrepancies"] == []
        assert facts["star_topups"] == len(self.payments)
        assert facts["hold_status"] == {hold_id: m.status for hold_id, m in self.model_holds.items()}

    async def _facts(self) -> dict[str, Any]:
        ledger, pool, tenant = self.ledger, self.env.pool, self.tenant
        return {
            "balances": {u: await ledger.balance(tenant, u) for u in USERS},
            "bystander": {u: await ledger.balance(self.env.bystander, u) for u in USERS},
            "discrepancies": await ledger.reconcile(tenant),
            "last_after": {
                r["user_id"]: (r["available_after"], r["held_after"])
                for r in await pool.fetch(
                    """SELECT DISTINCT ON (user_id) user_id, available_after, held_after FROM ledger_entries
                       WHERE tenant_id = $1 ORDER BY user_id, id DESC""",
                    tenant,
                )
            },
            "star_topups": await pool.fetchval(
                "SELECT count(*) FROM ledger_entries WHERE tenant_id = $1 AND kind = 'topup'", tenant
            ),
            "hold_status": {
                r["id"]: r["status"]
                for r in await pool.fetch("SELECT id, status FROM holds WHERE tenant_id = $1", tenant)
            },
        }


def test_ledger_state_machine(env: Env) -> None:
    class Machine(LedgerMachine):
        def __init__(self) -> None:
            super().__init__(env)

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=30, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
        ),
    )


async def _concurrent_round(pools: list[asyncpg.Pool], amounts: list[int], start: int) -> None:
    """Two processes (two pools) race on one account: reserves beyond the balance, both settling every
    hold at once, the same credit key twice. Invariants: nothing negative, each hold settled exactly
    once (exactly one winner), the balance equals start - committed, the ledger reconciles."""
    ledgers = [Ledger(p) for p in pools]
    tenant = await _make_tenant(pools[0])
    user = 7
    if start:
        await ledgers[0].credit(
            tenant, user, start, kind="admin_credit", unique_key="open", actor="admin:1", reason="t"
        )

    async def reserve(i: int, amount: int) -> int | None:
        try:
            hold = await ledgers[i % 2].reserve(
                tenant, user, amount, f"job{i}", correlation_id=None, actor=f"user:{user}", ttl_seconds=60
            )
        except InsufficientFunds:
            return None
        return hold.id

    reserved = await asyncio.gather(*(reserve(i, a) for i, a in enumerate(amounts)))
    holds = [(h, a) for h, a in zip(reserved, amounts, strict=True) if h is not None]
    assert sum(a for _, a in holds) <= start, "more was reserved than the balance"
    committed = 0
    for index, (hold_id, amount) in enumerate(holds):
        commit_first = index % 2 == 0
        won = await asyncio.gather(
            ledgers[0].commit(tenant, hold_id) if commit_first else ledgers[0].release(tenant, hold_id),
            ledgers[1].release(tenant, hold_id) if commit_first else ledgers[1].commit(tenant, hold_id),
        )
        assert sum(won) == 1, f"hold {hold_id} settled {sum(won)} times"
        first_is_commit = commit_first
        committed += amount if (won[0] and first_is_commit) or (won[1] and not first_is_commit) else 0
    twice = await asyncio.gather(
        *(
            ledgers[i].credit(tenant, user, 5, kind="admin_credit", unique_key="bonus", actor="admin:1", reason="t")
            for i in (0, 1)
        )
    )
    assert sorted(twice) == [False, True]
    balance = await ledgers[1].balance(tenant, user)
    assert balance == Balance(start - committed + 5, 0)
    assert await ledgers[0].reconcile(tenant) == []


def test_two_processes_racing_on_one_account(env: Env, database_url: str) -> None:
    second = env.loop.run(create_pool(database_url, 4, application_name="tests-ledger-second"))
    try:

        @settings(
            max_examples=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(amounts=st.lists(st.integers(1, 400), min_size=2, max_size=12), start=st.integers(0, 1500))
        def race(amounts: list[int], start: int) -> None:
            env.loop.run(_concurrent_round([env.pool, second], amounts, start))

        race()
    finally:
        env.loop.run(second.close())
