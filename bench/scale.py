"""Figures 1-3: start time, memory and Postgres connections of one supervisor with N idle tenants.

One pass per N shares the work of the three figures: a fresh database with N tenants, a cold start
(no webhook set yet at the fake), then warm restarts (getWebhookInfo already matches, so no setWebhook).
Each launch is timed from the spawn to /health 200 and to "all N active"; memory and connections are
sampled once the tenants are idle.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    DEFAULT_POOL_SIZE,
    INFO,
    MISS,
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
from sandbox.stack import free_port

ACTIVE_TIMEOUT = 90.0  # per launch below 1,000 tenants
ACTIVE_TIMEOUT_LARGE = 60.0  # per launch at 1,000 tenants (target 10 s): a stuck boot must not eat the budget
ACTIVE_TIMEOUT_HUGE = 120.0  # per launch at 10,000 tenants (target 20 s)
# Graded tenant counts and their targets: start → all active (s), RSS (MiB).
START_TARGET_S = {1000: 10.0, 10_000: 20.0}
RSS_TARGET_MIB = {1000: 400.0, 10_000: 600.0}
SETTLE_SECONDS = 3.0  # idle time before sampling memory (1 s with --quick)
RSS_SAMPLES = 5


@dataclass
class Boot:
    kind: str  # "cold" or "warm"
    health_s: float
    active_s: float | None  # None: not all active within the timeout
    active_reached: int
    health_stall_s: float  # longest gap between two answered /health probes during the boot
    set_webhook_calls: int
    get_webhook_info_calls: int
    shutdown_s: float | None = None
    stack_dump: list[str] | None = None  # py-spy dump when the boot timed out


@dataclass
class ScaleSample:
    tenants: int
    timeout_s: float
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

    @property
    def reached(self) -> bool:
        return any(b.active_s is not None for b in self.boots)


def _tenant_counts(quick: bool) -> dict[str, list[int]]:
    if quick:
        return {"start": [10, 100], "memory": [0, 10, 100], "connections": [1, 10, 100]}
    return {
        "start": [10, 100, 1000, 10_000],
        "memory": [0, 100, 1000, 10_000],
        "connections": [1, 100, 1000, 10_000],
    }


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
    # Quick: 3 + 2 launches still give the 5 runs the /health median needs.
    warm_runs = 3 if not bench.quick else (2 if tenants <= 10 else 1)
    timeout = ACTIVE_TIMEOUT_HUGE if tenants >= 10_000 else ACTIVE_TIMEOUT_LARGE if tenants >= 1000 else ACTIVE_TIMEOUT
    result = ScaleSample(tenants, timeout)
    port = free_port()  # one port for every restart: the webhook URL, and so getWebhookInfo, stays the same
    async with bench.stack(f"scale{tenants}", history_limit=200) as stack:
        started = time.perf_counter()
        if tenants:
            await stack.add_tenants_direct("t", tenants)
        result.add_tenants_s = time.perf_counter() - started
        observer = await _admin_pool(stack.database_url)
        prober = Prober()
        try:
            for run in range(1 + warm_runs):
                kind = "cold" if run == 0 else "warm"
                name = f"b{bench.run_id}-n{tenants}-{run}"
                bench.log(f"  scale N={tenants}: {kind} start #{run}")
                set_before, info_before = _calls(stack, "setWebhook"), _calls(stack, "getWebhookInfo")
                launched = await launch(stack, name, port=port)
                boot, peak = await _watch_boot(prober, observer, launched, tenants, kind, result.timeout_s)
                boot.set_webhook_calls = _calls(stack, "setWebhook") - set_before
                boot.get_webhook_info_calls = _calls(stack, "getWebhookInfo") - info_before
                result.connections_peak = max(result.connections_peak, peak)
                if boot.active_s is None:
                    boot.stack_dump = await _py_spy_dump(launched.pid)
                    boot.shutdown_s = await stop(launched.sup, signal.SIGKILL)
                    result.boots.append(boot)
                    bench.log(f"  scale N={tenants}: not all active after {result.timeout_s:.0f} s; no more restarts")
                    break
                if run in (0, warm_runs):
                    settle = 1.0 if bench.quick else SETTLE_SECONDS
                    await _sample_idle(result, launched, observer, name, cold=run == 0, settle=settle)
                boot.shutdown_s = await stop(launched.sup)
                result.boots.append(boot)
        finally:
            await prober.close()
            await observer.close()
    return result


async def _watch_boot(
    prober: Prober, observer: Any, launched: Launched, tenants: int, kind: str, timeout: float
) -> tuple[Boot, int]:
    """Poll /health from the spawn: first 200, then all tenants active (or the timeout)."""
    name = launched.sup.name
    health_s = await prober.seconds_until(launched, lambda _h: True, timeout=20, interval=0.005, what="/health 200")
    last_answer = time.perf_counter()
    stall = 0.0
    active = 0
    peak = 0
    deadline = launched.started + timeout
    while time.perf_counter() < deadline:
        if launched.sup.proc.returncode is not None:
            raise RuntimeError(f"{name} exited with {launched.sup.proc.returncode}: {launched.sup.log()[-1500:]}")
        body = await prober.health(launched.sup.port)
        now = time.perf_counter()
        if body is not None:
            stall = max(stall, now - last_answer)
            last_answer = now
            active = by_state(body, "active")
            if "tenants" in body and active >= tenants:
                return Boot(kind, health_s, now - launched.started, active, stall, 0, 0), peak
        peak = max(peak, await connections(observer, name))
        await asyncio.sleep(0.05)
    stall = max(stall, time.perf_counter() - last_answer)
    return Boot(kind, health_s, None, active, stall, 0, 0), peak


async def _py_spy_dump(pid: int, samples: int = 3) -> list[str]:
    """Where the stuck process is, a few times a second apart (py-spy dump), for the report."""
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        return ["py-spy not installed"]
    lines: list[str] = []
    for _ in range(samples):
        proc = await asyncio.create_subprocess_exec(
            str(exe), "dump", "--pid", str(pid), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
        lines += [line.rstrip() for line in out.decode(errors="replace").splitlines()[:25]]
        lines.append("--")
        await asyncio.sleep(1)
    return lines


async def _sample_idle(
    result: ScaleSample, launched: Launched, pool: Any, instance: str, *, cold: bool, settle: float
) -> None:
    await asyncio.sleep(settle)
    samples = []
    for _ in range(RSS_SAMPLES):
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


def _boot_note(boot: Boot | None, timeout: float) -> str:
    if boot is None:
        return "no run"
    if boot.active_s is None:
        return (
            f"NOT all active after {timeout:.0f} s ({boot.active_reached} active); "
            f"/health unanswered for up to {boot.health_stall_s:.1f} s"
        )
    return f"{boot.set_webhook_calls} setWebhook; longest /health stall {boot.health_stall_s:.2f} s"


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
    for s in samples:
        cold = s.cold()
        warm = s.warm()
        warm_times = [b.active_s for b in warm if b.active_s is not None]
        warm_median = median(warm_times) if warm and len(warm_times) == len(warm) else None
        limit = START_TARGET_S.get(s.tenants)
        target = f"≤ {limit:.0f} s" if limit is not None else "—"
        cold_value = cold.active_s if cold else None
        out.rows.append(
            Row(
                "start",
                f"active_cold_{s.tenants}_s",
                f"start → {s.tenants} tenants active (cold)",
                rounded(cold_value if cold_value is not None else None, 3),
                "s",
                target,
                at_most(cold_value, limit) if limit is not None else INFO,
                _boot_note(cold, s.timeout_s),
            )
        )
        skipped = bool(warm) and all(b.set_webhook_calls == 0 for b in warm)
        warm_note = (
            f"median of {len(warm)} restarts; setWebhook skipped: {'yes' if skipped else 'NO'}; "
            f"longest /health stall {max((b.health_stall_s for b in warm), default=0):.2f} s"
            if warm
            else "not run: the cold start did not finish"
        )
        out.rows.append(
            Row(
                "start",
                f"active_warm_{s.tenants}_s",
                f"start → {s.tenants} tenants active (warm)",
                rounded(warm_median, 3),
                "s",
                target,
                at_most(warm_median, limit) if limit is not None else INFO,
                warm_note,
            )
        )
    out.details = {
        "per_tenant_count": {
            str(s.tenants): {
                "add_tenants_s": round(s.add_tenants_s, 2),
                "timeout_s": s.timeout_s,
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
        mib = _mib(s.rss_warm if s.rss_warm is not None else s.rss_cold)
        limit = RSS_TARGET_MIB.get(n)
        note = (
            f"median of {RSS_SAMPLES} samples, idle with all active (warm start); "
            f"cold start: {_mib(s.rss_cold) or 0:.1f} MiB"
            if s.reached
            else f"not measured: the {n} tenants never all became active (see start)"
        )
        out.rows.append(
            Row(
                "memory",
                f"rss_{n}_mib",
                f"RSS with {n} idle active tenants",
                rounded(mib, 1),
                "MiB",
                f"≤ {limit:.0f} MiB" if limit is not None else "—",
                at_most(mib, limit) if limit is not None else INFO,
                note,
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
            f"(RSS{high} − RSS{low}) / {high - low}" if per_tenant is not None else f"RSS{high} not measured",
        )
    )
    out.details = {str(n): {"rss_warm_bytes": s.rss_warm, "rss_cold_bytes": s.rss_cold} for n, s in samples.items()}
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
        if s.reached:
            value: int | None = s.connections_peak
            status = at_most(s.connections_peak, limit)
            note = f"peak over boot and idle (idle: {s.connections_idle}); pool {DEFAULT_POOL_SIZE} + locker + listener"
        else:
            value, status = None, MISS
            note = f"not measured: the boot never finished (peak so far {s.connections_peak}; see start)"
        out.rows.append(
            Row(
                "connections",
                f"pg_connections_{n}",
                f"Postgres connections at {n} tenant{'' if n == 1 else 's'}",
                value,
                "",
                f"≤ {limit}",
                status,
                note,
            )
        )
    peaks = [s.connections_peak for s in samples.values() if s.reached]
    complete = len(peaks) == len(samples)
    out.rows.append(
        Row(
            "connections",
            "pg_connections_spread",
            f"connections growth {min(counts)} → {max(counts)} tenants",
            max(peaks) - min(peaks) if complete else None,
            "",
            f"bounded (≤ {limit} at every N)",
            PASS if complete and max(peaks) <= limit else MISS,
            "constant in N means the count does not track tenants; the pool opens connections on demand"
            if complete
            else "incomplete: not every N finished booting",
        )
    )
    out.details = {str(n): {"peak": s.connections_peak, "idle": s.connections_idle} for n, s in samples.items()}
    return out
