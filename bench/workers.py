"""WORKERS=2 against WORKERS=1 in the webhook figure's run: same users, same port, same closed loop.

The throughput ratio is the figure; the CPU split (each supervisor process, the Postgres backends of
its database, and the bench process that runs the fake Telegram and the load generator) says where the
two cores went, so a figure for a machine with more cores can be projected: on this 2-core machine the
load generator and Postgres compete with the workers for the same cores.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import psutil

from bench.common import INFO, Bench, BenchStack, Row, at_least, launch, rounded, stop
from bench.loadgen import LoadGen, Phase, User, planned_closed
from shared.db import LOCK_NS_TENANT

__all__ = ["CpuSplit", "WorkersRun", "measure_workers", "workers_rows"]

WORKERS = 2  # the run compared with WORKERS=1


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


@dataclass
class CpuSplit:
    """CPU seconds per process over a window, as % of one core: the supervisor's process tree, every
    Postgres backend of the database, and this bench process."""

    pid: int
    database_url: str
    started: float = 0.0
    before: dict[str, float] = field(default_factory=dict)

    async def _sample(self) -> dict[str, float]:
        sample = {f"supervisor pid {p.pid}": _cpu(p) for p in _tree(self.pid)}
        sample["bench (fake Telegram + load)"] = _cpu(psutil.Process(os.getpid()))
        conn = await asyncpg.connect(self.database_url)
        try:
            pids = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        finally:
            await conn.close()
        backends = [_cpu(psutil.Process(r["pid"])) for r in pids if psutil.pid_exists(r["pid"])]
        sample["postgres backends"] = sum(backends)
        return sample

    async def start(self) -> None:
        self.before = await self._sample()
        self.started = time.perf_counter()

    async def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self.started
        after = await self._sample()
        return {
            name: round((value - self.before.get(name, 0.0)) / elapsed * 100, 1)
            for name, value in after.items()
            if value - self.before.get(name, 0.0) > 0
        }


@dataclass
class WorkersRun:
    closed: Phase
    cpu_pct: dict[str, float]
    rss_mib: dict[str, float]
    held_s: float | None


async def _all_held(database_url: str, tenants: int, timeout: float) -> float | None:
    """Seconds until every tenant's advisory lock is held (by any worker); None after `timeout`."""
    started = time.perf_counter()
    conn = await asyncpg.connect(database_url)
    try:
        while time.perf_counter() - started < timeout:
            held = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint::oid "
                "AND objsubid = 2 AND granted",
                LOCK_NS_TENANT,
            )
            if held >= tenants:
                return time.perf_counter() - started
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    return None


async def measure_workers(
    bench: Bench, stack: BenchStack, gen: LoadGen, port: int, users: list[User], plan: dict[str, Any], tenants: int
) -> WorkersRun:
    """One WORKERS=2 supervisor on `port`: warm-up pass, then the same closed loop as WORKERS=1."""
    launched = await launch(stack, f"b{bench.run_id}-hook2", port=port, WORKERS=str(WORKERS))
    try:
        held_s = await _all_held(stack.database_url, tenants, timeout=120)
        await asyncio.sleep(3)  # both workers past their boot: webhooks checked, first resync done
        bench.log("  webhook [workers=2]: warm-up pass")
        await planned_closed(gen, port, users, plan, warmup=True)
        bench.log(f"  webhook [workers=2]: closed loop, {plan['concurrency']} senders, {plan['count']} updates")
        split = CpuSplit(launched.pid, stack.database_url)
        await split.start()
        closed = await planned_closed(gen, port, users, plan)
        cpu = await split.stop()
        rss = {f"pid {p.pid}": round(p.memory_info().rss / 2**20, 1) for p in _tree(launched.pid)}
    finally:
        await stop(launched.sup)
    return WorkersRun(closed, cpu, rss, held_s)


def workers_rows(one: Phase, one_cpu: dict[str, float], two: WorkersRun) -> list[Row]:
    single, double = one.throughput(), two.closed.throughput()
    speedup = double / single if single and double else None
    rss = list(two.rss_mib.values())
    projected = _projected_speedup(single, one_cpu, double, two.cpu_pct)
    return [
        Row(
            "webhook",
            "workers_2_throughput",
            "ours, WORKERS=2: closed loop",
            rounded(double, 1),
            "upd/s",
            "—",
            INFO,
            f"{len(two.closed.ok)}/{len(two.closed.shots)} replied; all locks held {rounded(two.held_s, 1)} s after spawn",
        ),
        Row(
            "webhook",
            "workers_2_speedup",
            "throughput WORKERS=2 / WORKERS=1",
            rounded(speedup, 2),
            "x",
            "≥ 1.3",
            at_least(speedup, 1.3),
            "same run, same load; CPU % of one core, WORKERS=1: "
            + ", ".join(f"{k} {v}" for k, v in one_cpu.items())
            + "; WORKERS=2: "
            + ", ".join(f"{k} {v}" for k, v in two.cpu_pct.items()),
        ),
        Row(
            "webhook",
            "workers_2_speedup_projected",
            "WORKERS=2 / WORKERS=1 with a core per worker (projected)",
            rounded(projected, 2),
            "x",
            "—",
            INFO,
            "each run's throughput scaled to its supervisor processes' CPU: a core each for the workers "
            "(Postgres, the fake and the load on other cores, as on a 4-core machine)",
        ),
        Row(
            "webhook",
            "workers_extra_rss_mib",
            "memory of an extra worker",
            rounded(min(rss[1:]) if len(rss) > 1 else None, 1),
            "MiB",
            "—",
            INFO,
            "RSS per process after the loop: " + ", ".join(f"{k} {v} MiB" for k, v in two.rss_mib.items()),
        ),
    ]


def _projected_speedup(
    single: float | None, one_cpu: dict[str, float], double: float | None, two_cpu: dict[str, float]
) -> float | None:
    """Throughput if each worker had a core of its own: a run's updates/s divided by its supervisor
    processes' share of their cores (the WORKERS=2 parent, which only forwards signals, counts with them).
    On two shared cores the measured ratio is capped by Postgres, the fake and the load taking the second
    core; this says what more cores would give. An upper bound: it assumes throughput scales with CPU."""
    busy_one = sum(v for k, v in one_cpu.items() if k.startswith("supervisor"))
    busy_two = sum(v for k, v in two_cpu.items() if k.startswith("supervisor"))
    if not single or not double or not busy_one or not busy_two:
        return None
    return (double * 100 * WORKERS / busy_two) / (single * 100 / busy_one)
