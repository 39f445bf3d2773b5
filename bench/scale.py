"""Figures 1-3: start time, memory and Postgres connections of one supervisor with N idle tenants.

One pass per N shares the work of the three figures: a fresh database with N tenants, a cold start
(no webhook set yet at the fake), then warm restarts (getWebhookInfo already matches, so no setWebhook).
Each launch is timed from the spawn to /health 200 and to "all N active"; memory and connections are
sampled once the tenants are idle.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.common import (
    DEFAULT_POOL_SIZE,
    INFO,
    PASS,
    Bench,
    BenchStack,
    FigureResult,
    Launched,
    Prober,
    Row,
    at_most,
    by_state,
    connections,
    launch,
    median,
    rounded,
    rss_bytes,
    stop,
)

ACTIVE_TIMEOUT = 90.0  # per launch; the target at 1,000 tenants is 10 s
SETTLE_SECONDS = 3.0  # idle time before sampling memory


@dataclass
class Boot:
    kind: str  # "cold" or "warm"
    health_s: float
    active_s: float
    set_webhook_calls: int
    get_webhook_info_calls: int
    shutdown_s: float | None = None


@dataclass
class ScaleSample:
    tenants: int
    boots: list[Boot] = field(default_factory=list)
    rss_cold: int | None = None
    rss_warm: int | None = None
    connections_peak: int = 0
    connections_idle: int | None = None
    add_tenants_s: float = 0.0

    def warm(self) -> list[Boot]:
        return [b for b in self.boots if b.kind == "warm"]

    def cold(self) -> Boot | None:
        return next((b for b in self.boots if b.kind == "cold"), None)


def _tenant_counts(quick: bool) -> dict[str, list[int]]:
    if quick:
        return {"start": [10, 100], "memory": [0, 10, 100], "connections": [1, 10, 100]}
    return {"start": [10, 100, 1000], "memory": [0, 100, 1000], "connections": [1, 100, 1000]}


async def sample(bench: Bench, tenants: int) -> ScaleSample:
    """The measurements at N tenants, computed once per run and shared by figures 1-3."""
    key = f"scale:{tenants}"
    if key not in bench.cache:
        bench.cache[key] = await _measure(bench, tenants)
    result: ScaleSample = bench.cache[key]
    return result


def _calls(stack: BenchStack, method: str) -> int:
    return sum(len(stack.telegram.calls(t.token, method)) for t in stack.tenants)


async def _measure(bench: Bench, tenants: int) -> ScaleSample:
    warm_runs = (2 if bench.quick else 3) if tenants >= 1000 else (2 if bench.quick else 4)
    result = ScaleSample(tenants)
    async with bench.stack(f"scale{tenants}", history_limit=200) as stack:
        started = time.perf_counter()
        if tenants:
            await stack.add_tenants_direct("t", tenants)
        result.add_tenants_s = time.perf_counter() - started
        pool_app = await _admin_pool(stack.database_url)
        prober = Prober()
        try:
            for run in range(1 + warm_runs):
                kind = "cold" if run == 0 else "warm"
                name = f"b{bench.run_id}-n{tenants}-{run}"
                bench.log(f"  scale N={tenants}: {kind} start {run}")
                set_before, info_before = _calls(stack, "setWebhook"), _calls(stack, "getWebhookInfo")
                launched = await launch(stack, name)
                peak = 0

                async def watch_connections(instance: str = name) -> None:
                    nonlocal peak
                    peak = max(peak, await connections(pool_app, instance))

                health_s = await prober.seconds_until(
                    launched, lambda _h: True, timeout=20, interval=0.005, what="/health 200"
                )
                active_s = await prober.seconds_until(
                    launched,
                    lambda h, n=tenants: "tenants" in h and by_state(h, "active") >= n,
                    timeout=ACTIVE_TIMEOUT,
                    interval=0.05,
                    what=f"{tenants} active",
                    on_poll=watch_connections,
                )
                boot = Boot(
                    kind,
                    health_s,
                    active_s,
                    _calls(stack, "setWebhook") - set_before,
                    _calls(stack, "getWebhookInfo") - info_before,
                )
                if run in (0, warm_runs):
                    await _sample_idle(result, launched, pool_app, name, cold=run == 0)
                result.connections_peak = max(result.connections_peak, peak)
                boot.shutdown_s = await stop(launched.sup)
                result.boots.append(boot)
        finally:
            await prober.close()
            await pool_app.close()
    return result


async def _sample_idle(result: ScaleSample, launched: Launched, pool: Any, instance: str, *, cold: bool) -> None:
    await asyncio.sleep(SETTLE_SECONDS)
    samples = []
    for _ in range(5):
        samples.append(rss_bytes(launched.pid))
        await asyncio.sleep(0.2)
    rss = int(median(samples) or 0)
    if cold:
        result.rss_cold = rss
    else:
        result.rss_warm = rss
    idle = await connections(pool, instance)
    result.connections_idle = idle if result.connections_idle is None else max(result.connections_idle, idle)
    result.connections_peak = max(result.connections_peak, idle)


async def _admin_pool(dsn: str) -> Any:
    from shared.db import create_pool

    return await create_pool(dsn, 2, application_name="bench-observer")


# --- figure 1 -----------------------------------------------------------------------------------------


async def figure_start(bench: Bench) -> FigureResult:
    counts = _tenant_counts(bench.quick)["start"]
    samples = [await sample(bench, n) for n in counts]
    out = FigureResult()
    health = [b.health_s for s in samples for b in s.boots]
    health_median = median(health)
    out.rows.append(
        Row(
            "start",
            "health_200_s",
            "process start → /health 200",
            rounded(health_median),
            "s",
            "≤ 0.3 s",
            at_most(health_median, 0.3),
            f"median of {len(health)} launches (spawn of `python -m supervisor run` to first 200)",
        )
    )
    largest = max(counts)
    for s in samples:
        cold = s.cold()
        warm = [b.active_s for b in s.warm()]
        warm_median = median(warm)
        limit_applies = s.tenants == largest
        target = "≤ 10 s" if limit_applies and largest >= 1000 else "—"
        cold_status = at_most(cold.active_s if cold else None, 10.0) if target != "—" else INFO
        warm_status = at_most(warm_median, 10.0) if target != "—" else INFO
        out.rows.append(
            Row(
                "start",
                f"active_cold_{s.tenants}_s",
                f"start → {s.tenants} tenants active (cold)",
                rounded(cold.active_s if cold else None, 3),
                "s",
                target,
                cold_status,
                f"webhooks not yet set; {cold.set_webhook_calls if cold else 0} setWebhook calls",
            )
        )
        skipped = all(b.set_webhook_calls == 0 for b in s.warm())
        out.rows.append(
            Row(
                "start",
                f"active_warm_{s.tenants}_s",
                f"start → {s.tenants} tenants active (warm)",
                rounded(warm_median, 3),
                "s",
                target,
                warm_status,
                f"median of {len(warm)} restarts; setWebhook skipped: {'yes' if skipped else 'NO'}",
            )
        )
    out.details = {
        "per_tenant_count": {
            str(s.tenants): {
                "add_tenants_s": round(s.add_tenants_s, 2),
                "boots": [asdict(b) for b in s.boots],
            }
            for s in samples
        },
        "health_200_s_all": [round(h, 4) for h in health],
        "notes": "production defaults (LOCK_HEARTBEAT_SECONDS=1); fakes run in the bench process on the same 2 cores",
    }
    return out


# --- figure 2 -----------------------------------------------------------------------------------------


async def figure_memory(bench: Bench) -> FigureResult:
    counts = _tenant_counts(bench.quick)["memory"]
    samples = {n: await sample(bench, n) for n in counts}
    out = FigureResult()
    for n, s in samples.items():
        out.rows.append(
            Row(
                "memory",
                f"rss_{n}_mib",
                f"RSS with {n} idle active tenants",
                rounded(_mib(s.rss_warm), 1),
                "MiB",
                "≤ 400 MiB" if n >= 1000 else "—",
                at_most(_mib(s.rss_warm), 400) if n >= 1000 else INFO,
                f"median of 5 samples {SETTLE_SECONDS:.0f} s after all active (warm start); cold start: "
                f"{_mib(s.rss_cold) or 0:.1f} MiB",
            )
        )
    low, high = min(counts), max(counts)
    low_rss, high_rss = samples[low].rss_warm, samples[high].rss_warm
    per_tenant = (high_rss - low_rss) / (high - low) / 1024 if low_rss and high_rss and high > low else None
    out.rows.append(
        Row(
            "memory",
            "per_tenant_kib",
            "per-tenant cost",
            rounded(per_tenant, 1),
            "KiB",
            "≤ 150 KiB",
            at_most(per_tenant, 150),
            f"(RSS{high} − RSS{low}) / {high - low}",
        )
    )
    out.details = {
        str(n): {"rss_warm_bytes": s.rss_warm, "rss_cold_bytes": s.rss_cold} for n, s in samples.items()
    }
    return out


def _mib(value: int | None) -> float | None:
    return None if value is None else value / 2**20


# --- figure 3 -----------------------------------------------------------------------------------------


async def figure_connections(bench: Bench) -> FigureResult:
    counts = _tenant_counts(bench.quick)["connections"]
    samples = {n: await sample(bench, n) for n in counts}
    limit = DEFAULT_POOL_SIZE + 2
    out = FigureResult()
    for n, s in samples.items():
        out.rows.append(
            Row(
                "connections",
                f"pg_connections_{n}",
                f"Postgres connections, {n} tenants",
                s.connections_peak,
                "",
                f"≤ {limit}",
                at_most(s.connections_peak, limit),
                f"peak over boot and idle (idle: {s.connections_idle}); pool {DEFAULT_POOL_SIZE} + locker + listener",
            )
        )
    peaks = [s.connections_peak for s in samples.values()]
    spread = max(peaks) - min(peaks)
    out.rows.append(
        Row(
            "connections",
            "pg_connections_spread",
            "connections growth 1 → max tenants",
            spread,
            "",
            f"bounded (≤ {limit} at every N)",
            PASS if max(peaks) <= limit else "MISS",
            "constant means independent of N; the pool grows on demand up to its size",
        )
    )
    out.details = {str(n): {"peak": s.connections_peak, "idle": s.connections_idle} for n, s in samples.items()}
    return out
