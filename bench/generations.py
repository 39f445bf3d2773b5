"""Figure 6: 200 concurrent generations over 20 tenants, fake KIE taking 1-5 s and failing 10%.

Each user opens the bot, is credited, and walks the order wizard to the confirmation screen through
the fake Telegram (a forced `md:<model>:1` button jumps straight to the model, as the lifecycle tests
do). Then every user presses "Generate" at once. Every user must get exactly one outcome (the result
photo, or one failure message), the ledger must reconcile and conserve money, and the time from the
job's finish (callback or poll applied) to the user's delivery is reported.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from bench.common import (
    INFO,
    PASS,
    Bench,
    BenchStack,
    FigureResult,
    Row,
    launch,
    median,
    percentile,
    rounded,
    stop,
    until_active,
)
from sandbox.kie import FakeKieConfig
from sandbox.stack import ScriptedUser, button
from sandbox.telegram.model import TranscriptEntry

MODEL = "google/imagen4-fast"
START_BALANCE = 10_000
CREDIT_KINDS = ("topup", "admin_credit", "bonus_welcome", "bonus_referral", "refund_reverted")
DEBIT_KINDS = ("admin_debit", "refund")


def _plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {"tenants": 5, "users_per_tenant": 4, "outcome_timeout_s": 60.0}
    return {"tenants": 20, "users_per_tenant": 10, "outcome_timeout_s": 120.0}


def _is_outcome(entry: TranscriptEntry) -> bool:
    return entry.from_bot and (entry.media_kind == "photo" or "❌" in (entry.text or ""))


async def figure_generations(bench: Bench) -> FigureResult:
    plan = _plan(bench.quick)
    kie = FakeKieConfig(durations=(1.0, 5.0), fail_ratio=0.1, seed=7)
    details: dict[str, Any] = {"plan": plan, "kie": {"durations": kie.durations, "fail_ratio": kie.fail_ratio}}
    async with bench.stack("generations", history_limit=5000, kie_config=kie) as stack:
        await stack.add_tenants_direct("g", plan["tenants"])
        launched = await launch(stack, f"b{bench.run_id}-gen")
        await until_active(launched, plan["tenants"])
        pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=4)
        try:
            users = [
                ScriptedUser(stack.telegram, tenant.token, 7_500_000 + k * 1000 + i)
                for k in range(plan["users_per_tenant"])
                for i, tenant in enumerate(stack.tenants)
            ]
            bench.log(f"  generations: {len(users)} users fund and walk the wizard to the confirmation")
            started = time.perf_counter()
            confirms = await _prepare(stack, pool, users)
            details["prepare_s"] = round(time.perf_counter() - started, 1)
            bench.log(f"  generations: {len(users)} users press Generate at once")
            waits = await _generate_all(users, confirms, plan["outcome_timeout_s"])
            await asyncio.sleep(3)  # a duplicate outcome would arrive now
            outcomes = {
                u.user_id: sum(1 for e in stack.telegram.transcript(u.token, u.user_id) if _is_outcome(e))
                for u in users
            }
            details["outcomes"] = _outcome_summary(outcomes, waits)
            details["ledger"] = await _ledger(pool)
            details["jobs"] = await _jobs(pool)
        finally:
            await pool.close()
        details["shutdown_s"] = round(await stop(launched.sup), 2)
    return FigureResult(rows=_rows(details, plan), details=details)


async def _tenant_ids(pool: asyncpg.Pool) -> dict[str, int]:
    return {r["slug"]: int(r["id"]) for r in await pool.fetch("SELECT id, slug FROM tenants")}


async def _prepare(stack: BenchStack, pool: asyncpg.Pool, users: list[ScriptedUser]) -> dict[int, TranscriptEntry]:
    """/start, credit, model, prompt, skip: every user ends on the confirmation screen with its price."""
    from tenant_runtime.billing.ledger import Ledger

    ledger = Ledger(pool)
    tenant_by_token = {t.token: t.slug for t in stack.tenants}
    ids = await _tenant_ids(pool)
    gate = asyncio.Semaphore(40)
    confirms: dict[int, TranscriptEntry] = {}

    async def one(user: ScriptedUser) -> None:
        async with gate:
            menu = await user.say("/start", expect="Выберите, что создать", timeout=60)
            await ledger.credit(
                ids[tenant_by_token[user.token]],
                user.user_id,
                START_BALANCE,
                kind="admin_credit",
                unique_key=f"bench:{user.user_id}",
                actor="admin:1",
                reason="bench funds",
            )
            await user.telegram.press_button(user.token, user.user_id, menu.message_id, f"md:{MODEL}:1", force=True)
            await user.expect("Шаг 1/2", after=menu.message_id - 1, timeout=60)
            step2 = await user.say(f"bench prompt {user.user_id}", expect="Шаг 2/2", timeout=60)
            confirms[user.user_id] = await user.tap(step2, "Пропустить", expect="Цена", timeout=60)

    await asyncio.gather(*(one(u) for u in users))
    return confirms


async def _generate_all(
    users: list[ScriptedUser], confirms: dict[int, TranscriptEntry], timeout: float
) -> dict[int, float | None]:
    """Press Generate for everyone at once; seconds from the press to the outcome (None: none came)."""

    async def one(user: ScriptedUser) -> float | None:
        confirm = confirms[user.user_id]
        pressed = time.perf_counter()
        await user.telegram.press_button(user.token, user.user_id, confirm.message_id, button(confirm, "Сгенерировать"))
        try:
            await user.telegram.wait_for_bot_message(
                user.token, user.user_id, predicate=_is_outcome, after_message_id=confirm.message_id, timeout=timeout
            )
        except TimeoutError:
            return None
        return time.perf_counter() - pressed

    results = await asyncio.gather(*(one(u) for u in users))
    return {u.user_id: r for u, r in zip(users, results, strict=True)}


def _outcome_summary(outcomes: dict[int, int], waits: dict[int, float | None]) -> dict[str, Any]:
    seen = [w for w in waits.values() if w is not None]
    return {
        "users": len(outcomes),
        "exactly_one": sum(1 for n in outcomes.values() if n == 1),
        "none": sum(1 for n in outcomes.values() if n == 0),
        "more_than_one": sum(1 for n in outcomes.values() if n > 1),
        "press_to_outcome_p50_s": rounded(median(seen), 3),
        "press_to_outcome_p99_s": rounded(percentile(seen, 99), 3),
        "press_to_outcome_max_s": rounded(max(seen, default=0.0), 3),
    }


async def _ledger(pool: asyncpg.Pool) -> dict[str, Any]:
    from tenant_runtime.billing.ledger import Ledger

    discrepancies = await Ledger(pool).reconcile()
    row = await pool.fetchrow(
        """SELECT
             (SELECT coalesce(sum(available + held), 0) FROM accounts)::bigint AS balances,
             (SELECT coalesce(sum(held), 0) FROM accounts)::bigint AS held,
             (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE kind = ANY($1::text[]))::bigint AS credits,
             (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE kind = ANY($2::text[]))::bigint AS debits,
             (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE kind = 'commit')::bigint AS committed,
             (SELECT count(*) FROM holds WHERE status = 'pending') AS pending_holds""",
        list(CREDIT_KINDS),
        list(DEBIT_KINDS),
    )
    expected = row["credits"] - row["debits"] - row["committed"]
    return {
        "reconcile_discrepancies": len(discrepancies),
        "sum_balances": row["balances"],
        "credits": row["credits"],
        "debits": row["debits"],
        "committed": row["committed"],
        "expected_balances": expected,
        "conserved": row["balances"] == expected,
        "held_left": row["held"],
        "pending_holds": row["pending_holds"],
    }


async def _jobs(pool: asyncpg.Pool) -> dict[str, Any]:
    statuses = {r["status"]: int(r["n"]) for r in await pool.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY 1")}
    rows = await pool.fetch(
        """SELECT extract(epoch FROM delivered_at - finished_at)::float8 AS deliver_s,
                  extract(epoch FROM finished_at - created_at)::float8 AS total_s
           FROM jobs WHERE delivered_at IS NOT NULL AND finished_at IS NOT NULL"""
    )
    deliver = [float(r["deliver_s"]) for r in rows]
    committed_jobs = await pool.fetchval("SELECT count(*) FROM jobs WHERE status = 'delivered'")
    commits = await pool.fetchval("SELECT count(*) FROM ledger_entries WHERE kind = 'commit'")
    return {
        "by_status": statuses,
        "delivered_commits_match": committed_jobs == commits,
        "finished_to_delivered_p50_ms": rounded(_ms(median(deliver)), 1),
        "finished_to_delivered_p99_ms": rounded(_ms(percentile(deliver, 99)), 1),
        "finished_to_delivered_max_ms": rounded(_ms(max(deliver, default=0.0)), 1),
        "created_to_finished_p50_s": rounded(median([float(r["total_s"]) for r in rows]), 2),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def _rows(details: dict[str, Any], plan: dict[str, Any]) -> list[Row]:
    outcomes, ledger, jobs = details["outcomes"], details["ledger"], details["jobs"]
    users = outcomes["users"]
    one_each = outcomes["exactly_one"] == users
    conserved = ledger["conserved"] and ledger["reconcile_discrepancies"] == 0 and ledger["pending_holds"] == 0
    failed = jobs["by_status"].get("failed", 0)
    return [
        Row(
            "generations",
            "exactly_one_outcome",
            f"users with exactly one outcome ({users} concurrent)",
            outcomes["exactly_one"],
            "",
            f"{users}",
            PASS if one_each else "MISS",
            f"none {outcomes['none']}, more than one {outcomes['more_than_one']}; jobs {jobs['by_status']} "
            f"({failed} failed ≈ 10% expected)",
        ),
        Row(
            "generations",
            "ledger_conserved",
            "ledger conserved",
            1 if conserved else 0,
            "",
            "reconcile() == [], Σbalances = credits − committed",
            PASS if conserved else "MISS",
            f"Σ {ledger['sum_balances']} = {ledger['credits']} − {ledger['committed']} − {ledger['debits']} (debits); "
            f"discrepancies {ledger['reconcile_discrepancies']}, pending holds {ledger['pending_holds']}",
        ),
        Row(
            "generations",
            "finished_to_delivered_p99_ms",
            "job finished → delivered, p99",
            jobs["finished_to_delivered_p99_ms"],
            "ms",
            "—",
            INFO,
            f"p50 {jobs['finished_to_delivered_p50_ms']} ms (jobs.finished_at → delivered_at, successes)",
        ),
        Row(
            "generations",
            "press_to_outcome_p99_s",
            "Generate press → outcome, p99",
            outcomes["press_to_outcome_p99_s"],
            "s",
            "—",
            INFO,
            f"p50 {outcomes['press_to_outcome_p50_s']} s; the fake KIE takes "
            f"{details['kie']['durations'][0]:g}–{details['kie']['durations'][1]:g} s per task",
        ),
    ]
