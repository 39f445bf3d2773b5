"""Shop statistics and exports at scale. Statistics: a million ledger rows across 100 shops (the busiest has a fifth of them),
then each period's statistics for the busiest shop, timed (medians of repeated reads; the first read
warms the cache, as an admin's second tap would find it).

Target: each query under 50 ms (issue: analytics for tenant admins), so a /admin → Statistics tap
answers well inside Telegram's patience and /status can show them per tenant.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench.common import Bench, FigureResult, Row, at_most, median
from sandbox.shop_history import seed_shop_history
from shared.crypto import KeyRing, generate_key
from shared.db import create_pool
from supervisor.tenants import NewTenant, TenantStore
from tenant_runtime.analytics import Period, shop_stats
from tenant_runtime.exports import ExportKind, export_csv

TARGET_MS = 50.0
REPEATS = 15
SHOPS = 100


def _plan(quick: bool) -> dict[str, int]:
    # ~3 ledger rows per generation that succeeded with a price (hold + commit) or per top-up.
    return {"ledger_rows": 100_000 if quick else 1_000_000, "shops": SHOPS}


async def figure_stats(bench: Bench) -> FigureResult:
    plan = _plan(bench.quick)
    dsn = await bench.database("stats")
    pool = await create_pool(dsn, 4, application_name="bench-stats")
    try:
        busiest = await _seed(pool, plan["ledger_rows"])
        rows_total = int(await pool.fetchval("SELECT count(*) FROM ledger_entries"))
        # What autovacuum does to a table after a bulk load: index-only scans need the visibility map.
        await pool.execute("VACUUM ANALYZE")
        timings: dict[str, float | None] = {}
        for period in Period:
            await shop_stats(pool, busiest, "Europe/Moscow", period)
            samples = []
            for _ in range(REPEATS):
                started = time.perf_counter()
                await shop_stats(pool, busiest, "Europe/Moscow", period)
                samples.append((time.perf_counter() - started) * 1000)
            timings[period.value] = median(samples)
        busiest_rows = int(await pool.fetchval("SELECT count(*) FROM ledger_entries WHERE tenant_id = $1", busiest))
    finally:
        await pool.close()
    details: dict[str, Any] = {"plan": plan, "ledger_rows": rows_total, "busiest_shop_rows": busiest_rows}
    details["median_ms"] = {k: round(v, 2) if v is not None else None for k, v in timings.items()}
    worst = max((v for v in timings.values() if v is not None), default=None)
    return FigureResult(
        rows=[
            Row(
                "stats",
                "stats_ms",
                f"shop statistics at {rows_total:,} ledger rows (slowest period, median)",
                worst,
                "ms",
                f"< {TARGET_MS:.0f} ms",
                at_most(worst, TARGET_MS),
                f"busiest shop {busiest_rows:,} rows; median today {details['median_ms']['today']} ms, "
                f"7 days {details['median_ms']['7d']} ms, 30 days {details['median_ms']['30d']} ms "
                "(three statements each)",
            )
        ],
        details=details,
    )


async def _seed(pool: asyncpg.Pool, ledger_rows: int) -> int:
    """The shops and their history; returns the busiest shop's id."""
    store = TenantStore(pool, KeyRing([generate_key()]))
    shops = [
        await store.add(NewTenant(f"stats-{i:03d}", "Stats", f"{7_700_000 + i}:{'A' * 35}", 7_700_000 + i, None, []))
        for i in range(SHOPS)
    ]
    busiest = shops[0].id
    for index, shop in enumerate(shops):
        share = ledger_rows // 5 if index == 0 else ledger_rows * 4 // 5 // (SHOPS - 1)
        # A top-up is one row, a paid success two (hold, commit), and half the generations are paid
        # successes: share / 4 top-ups and 3 share / 4 generations give the share in rows.
        await seed_shop_history(
            pool,
            shop.id,
            users=max(10, share // 20),
            topups=share // 4,
            generations=share * 3 // 4,
            seed=index,
            first_user=1_000_000 + index * 1_000_000,
        )
    return busiest


EXPORT_USERS = 100_000
EXPORT_RSS_TARGET_MIB = 30.0


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def figure_export(bench: Bench) -> FigureResult:
    """An export of 100,000 users streamed to a file in this process: how much its RSS grows."""
    users = EXPORT_USERS // 10 if bench.quick else EXPORT_USERS
    dsn = await bench.database("export")
    pool = await create_pool(dsn, 2, application_name="bench-export")
    try:
        store = TenantStore(pool, KeyRing([generate_key()]))
        shop = await store.add(NewTenant("export-shop", "Export", f"7800001:{'A' * 35}", 7_800_001, None, []))
        # Seeded by the server alone: rows built in this process would leave memory the export then reuses.
        await pool.execute(
            """INSERT INTO bot_users (tenant_id, user_id, language, first_name, username, referral_code, created_at)
               SELECT $1, 5000000 + n, 'ru', 'Пользователь ' || n, 'user_' || n, 'x' || n, now() - n * interval '1 s'
               FROM generate_series(1, $2) AS n""",
            shop.id,
            users,
        )
        before = peak = _rss_mib()
        size = 0
        started = time.perf_counter()
        with open(os.devnull, "wb") as out:
            async for chunk in export_csv(pool, shop.id, ExportKind.USERS, datetime(2000, 1, 1, tzinfo=UTC)):
                out.write(chunk)  # /dev/null: the bench measures memory, not the disk
                size += len(chunk)
                peak = max(peak, _rss_mib())
        seconds = time.perf_counter() - started
    finally:
        await pool.close()
    growth = round(peak - before, 1)
    return FigureResult(
        rows=[
            Row(
                "export",
                "export_rss_mib",
                f"RSS growth exporting {users:,} users as CSV",
                growth,
                "MiB",
                f"< {EXPORT_RSS_TARGET_MIB:.0f} MiB",
                at_most(growth, EXPORT_RSS_TARGET_MIB),
                f"{size / 2**20:.1f} MiB of CSV in {seconds:.1f} s, streamed in chunks of 1,000 rows",
            )
        ],
        details={"users": users, "bytes": size, "seconds": round(seconds, 2), "rss_before_mib": round(before, 1)},
    )
