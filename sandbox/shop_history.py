"""A shop's past, written straight into Postgres for tests and benchmarks of its statistics: users who
joined, Stars top-ups, and generations (succeeded, failed, running) with their holds and commits, spread
over the last days, deterministically from a seed.

`History` keeps what was written, so a test computes the expected numbers itself, in Python, and never
from the SQL it checks. Rows are bulk-copied; ledger running balances are not kept consistent (the
statistics never read them), so use a database of its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

__all__ = ["GenerationRow", "History", "seed_shop_history"]

MODELS = ("google/imagen4-fast", "bytedance/seedream", "kling/v2-1-standard", "suno/v4")
STATUSES = ("delivered", "delivered", "delivered", "succeeded", "failed", "submitted")


@dataclass(frozen=True)
class GenerationRow:
    model: str
    status: str
    price: int
    kie_credits: Decimal
    created_at: datetime


@dataclass
class History:
    users: dict[int, datetime] = field(default_factory=dict)  # user id -> joined
    topups: list[tuple[int, int, datetime]] = field(default_factory=list)  # user, amount, at
    commits: list[tuple[int, int, datetime]] = field(default_factory=list)  # user, amount, at
    generations: list[GenerationRow] = field(default_factory=list)


def _moment(rng: random.Random, now: datetime, days: int) -> datetime:
    """A time within the last `days`, never within 10 minutes of a midnight in any zone a test uses: a
    statistics period starts at a midnight, and the seconds between seeding and reading must not move
    an event across it."""
    while True:
        at = now - timedelta(seconds=rng.uniform(60, days * 86400))
        if all(abs((at + timedelta(hours=h)).timestamp() % 86400 - 43200) < 43200 - 600 for h in (0, 3)):
            return at


async def seed_shop_history(
    pool: asyncpg.Pool,
    tenant_id: int,
    *,
    users: int,
    topups: int,
    generations: int,
    days: int = 40,
    seed: int = 1,
    first_user: int = 1_000_000,
) -> History:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    history = History()
    for user in range(first_user, first_user + users):
        history.users[user] = _moment(rng, now, days)
    ids = list(history.users)
    for _ in range(topups):
        history.topups.append((rng.choice(ids), rng.choice((7500, 15000, 75000)), _moment(rng, now, days)))
    jobs = []
    for _ in range(generations):
        user, status = rng.choice(ids), rng.choice(STATUSES)
        price = rng.choice((0, 320, 1280, 4500))
        row = GenerationRow(
            rng.choice(MODELS), status, price, Decimal(rng.choice(("4", "16", "56.5"))), _moment(rng, now, days)
        )
        history.generations.append(row)
        jobs.append((user, row))
        if status in ("delivered", "succeeded") and price > 0:
            history.commits.append((user, price, row.created_at))
    await _write(pool, tenant_id, history, jobs)
    return history


async def _write(pool: asyncpg.Pool, tenant_id: int, history: History, jobs: list[tuple[int, GenerationRow]]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.copy_records_to_table(
            "bot_users",
            records=[(tenant_id, u, "ru", f"s{tenant_id}x{u}", at, at) for u, at in history.users.items()],
            columns=["tenant_id", "user_id", "language", "referral_code", "created_at", "last_seen_at"],
        )
        await conn.copy_records_to_table(
            "accounts", records=[(tenant_id, u) for u in history.users], columns=["tenant_id", "user_id"]
        )
        entries: list[tuple[object, ...]] = [
            (tenant_id, u, "topup", amount, None, f"seed-topup-{i}", "system", 0, 0, at)
            for i, (u, amount, at) in enumerate(history.topups)
        ]
        if history.commits:
            hold_ids = await conn.fetch(
                """INSERT INTO holds (tenant_id, user_id, amount, idempotency_key, status, expires_at, created_at,
                       resolved_at)
                   SELECT $1, u, a, 'seed-hold-' || n, 'committed', t, t, t
                   FROM unnest($2::bigint[], $3::bigint[], $4::timestamptz[]) WITH ORDINALITY AS x(u, a, t, n)
                   RETURNING id""",
                tenant_id,
                [u for u, _, _ in history.commits],
                [a for _, a, _ in history.commits],
                [t for _, _, t in history.commits],
            )
            for (u, amount, at), hold in zip(history.commits, hold_ids, strict=True):
                entries.append((tenant_id, u, "hold", amount, hold["id"], None, "system", 0, 0, at))
                entries.append((tenant_id, u, "commit", amount, hold["id"], None, "system", 0, 0, at))
        await conn.copy_records_to_table(
            "ledger_entries",
            records=entries,
            columns=[
                "tenant_id",
                "user_id",
                "kind",
                "amount",
                "hold_id",
                "unique_key",
                "actor",
                "available_after",
                "held_after",
                "created_at",
            ],
        )
        # jsonb has no binary COPY encoder in asyncpg: the jobs go in through unnest instead.
        await conn.execute(
            """INSERT INTO jobs (tenant_id, user_id, chat_id, model, params, kie_input, price, idempotency_key,
                   correlation_id, status, kie_credits, created_at, deadline_at)
               SELECT $1, u, u, m, '{}', '{}', p, 'seed-job-' || n, 'seed', s, k, t, t + interval '1 hour'
               FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::numeric[], $7::timestamptz[])
                    WITH ORDINALITY AS x(u, m, p, s, k, t, n)""",
            tenant_id,
            [u for u, _ in jobs],
            [g.model for _, g in jobs],
            [g.price for _, g in jobs],
            [g.status for _, g in jobs],
            [g.kie_credits for _, g in jobs],
            [g.created_at for _, g in jobs],
        )
