"""Figure 4: webhook throughput and latency at 100 tenants, against a bare aiogram baseline.

Same machine, same fake Telegram, same users and the same load for three servers in turn: our
supervisor, then bench/baseline.py with handle_in_background=False, then with True. Each gets one
unmeasured warm-up pass, a closed loop (C senders, bounded count and time) and an open loop at a fixed
rate. Latency is webhook POST start → the bot's reply reaching the fake (see bench/loadgen.py). After
ours, the same closed loop against WORKERS=2 on the same port (bench/workers.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from bench.common import (
    INFO,
    Bench,
    BenchStack,
    FigureResult,
    Launched,
    Prober,
    Profiler,
    Row,
    at_least,
    at_most,
    by_state,
    launch,
    median,
    percentile,
    rounded,
    stop,
    webhook_secrets,
)
from bench.loadgen import Endpoint, LoadGen, Phase, User, is_menu, open_loop, planned_closed
from bench.workers import CpuSplit, WorkersRun, measure_workers, workers_rows
from sandbox.stack import SupervisorProcess, free_port

TENANTS = 100


def _plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "users_per_tenant": 3,
            "concurrency": 16,
            "count": 400,
            "closed_s": 20,
            "rate": 100,
            "open_s": 4,
            "open_repeats": 1,
        }
    return {
        "users_per_tenant": 10,
        "concurrency": 32,
        "count": 3000,
        "closed_s": 60,
        "rate": 100,
        "open_s": 15,
        "open_repeats": 3,
    }


async def figure_webhook(bench: Bench) -> FigureResult:
    plan = _plan(bench.quick)
    details: dict[str, Any] = {"plan": plan}
    async with bench.stack("webhook", history_limit=50_000) as stack:
        await stack.add_tenants_direct("w", TENANTS)
        secrets_by_slug = await webhook_secrets(stack)
        endpoints = [Endpoint(t.slug, t.token, secrets_by_slug[t.slug]) for t in stack.tenants]
        # Interleaved by tenant, so consecutive shots hit different bots.
        users = [
            User(endpoint, 7_100_000 + k * TENANTS + i)
            for k in range(plan["users_per_tenant"])
            for i, endpoint in enumerate(endpoints)
        ]
        gen = LoadGen(stack.telegram)

        port = free_port()
        launched = await launch(stack, f"b{bench.run_id}-hook", port=port)
        prober = Prober()
        try:
            await prober.seconds_until(
                launched, lambda h: by_state(h, "active") >= TENANTS, timeout=120, what="100 active"
            )
        finally:
            await prober.close()
        bench.log(f"  webhook: {len(users)} users write /start through the fake (creates their chats)")
        details["chat_warmup_s"] = round(await _create_chats(stack, users), 2)
        ours = await _run_server(
            bench,
            gen,
            port,
            users,
            plan,
            "ours",
            pid=launched.pid,
            database_url=stack.database_url,
            instance=launched.sup.name,
        )
        details["ours_shutdown_s"] = round(await stop(launched.sup), 2)
        workers = await measure_workers(bench, stack, gen, port, users, plan, TENANTS)

        baselines: dict[str, Run] = {}
        for background in (False, True):
            label = f"baseline_bg_{str(background).lower()}"
            server = await _start_baseline(stack, endpoints, bench.workdir / "webhook", background=background)
            try:
                baselines[label] = await _run_server(bench, gen, server.port, users, plan, label, pid=server.proc.pid)
            finally:
                await stop(server)
    if ours.profile is not None:
        details["profile"] = ours.profile
    details["ours"] = ours.summary()
    for label, run in baselines.items():
        details[label] = run.summary()
    details["workers_2"] = {
        "closed": workers.closed.summary(),
        "cpu_pct_of_one_core": workers.cpu_pct,
        "rss_mib": workers.rss_mib,
        "all_held_s": rounded(workers.held_s, 2),
        "workers_1_cpu_pct_of_one_core": ours.cpu_pct,
    }
    return FigureResult(rows=_rows(ours, baselines, plan, workers), details=details)


async def _create_chats(stack: BenchStack, users: list[User]) -> float:
    """Each user writes /start via the fake first (the fake refuses messages to chats nobody opened)."""
    started = time.perf_counter()
    gate = asyncio.Semaphore(100)

    async def one(user: User) -> None:
        async with gate:
            update = await stack.telegram.send_text(user.endpoint.token, user.user_id, "/start")
            entry = await stack.telegram.wait_for_bot_message(
                user.endpoint.token, user.user_id, predicate=is_menu, after_message_id=update.message_id, timeout=60
            )
            user.cursor = entry.message_id

    await asyncio.gather(*(one(u) for u in users))
    return time.perf_counter() - started


@dataclass
class Run:
    """One server's share of the figure."""

    closed: Phase
    opened: list[Phase]
    usage: dict[str, Any]
    profile: dict[str, Any] | None = None
    cpu_pct: dict[str, float] | None = None  # per process during the closed loop (ours only)

    def open_p99(self) -> float | None:
        """The median over the open-loop repeats of each repeat's p99."""
        return median([p for p in (_pct(phase, 99) for phase in self.opened) if p is not None])

    def open_p50(self) -> float | None:
        return median([p for p in (_pct(phase, 50) for phase in self.opened) if p is not None])

    def summary(self) -> dict[str, Any]:
        return {
            "closed": self.closed.summary(),
            "open": [phase.summary() for phase in self.opened],
            "open_p99_ms_median": rounded(self.open_p99(), 2),
            "usage_closed_loop": self.usage,
        }


async def _run_server(
    bench: Bench,
    gen: LoadGen,
    port: int,
    users: list[User],
    plan: dict[str, Any],
    label: str,
    *,
    pid: int,
    database_url: str | None = None,
    instance: str | None = None,
) -> Run:
    bench.log(f"  webhook [{label}]: warm-up pass")
    await planned_closed(gen, port, users, plan, warmup=True)
    bench.log(f"  webhook [{label}]: closed loop, {plan['concurrency']} senders, {plan['count']} updates")
    meter = await Meter.start(pid, database_url, instance)
    split = CpuSplit(pid, database_url) if database_url is not None else None
    if split is not None:
        await split.start()
    profile = None
    if bench.profile and instance is not None:
        profiler = Profiler(pid, bench.workdir / "profiles" / f"webhook-{label}.txt", seconds=plan["closed_s"])
        async with profiler:
            closed = await planned_closed(gen, port, users, plan)
        profile = profiler.summary()
    else:
        closed = await planned_closed(gen, port, users, plan)
    cpu_pct = await split.stop() if split is not None else None
    usage = await meter.stop(len(closed.ok))
    opened = []
    for repeat in range(plan["open_repeats"]):
        bench.log(f"  webhook [{label}]: open loop #{repeat + 1}, {plan['rate']}/s for {plan['open_s']} s")
        opened.append(await open_loop(gen, port, users, rate=plan["rate"], seconds=plan["open_s"], name="open"))
    return Run(closed, opened, usage, profile, cpu_pct)


class Meter:
    """CPU seconds of the server process (and of its Postgres backends) and committed transactions."""

    def __init__(self, pid: int, database_url: str | None, instance: str | None) -> None:
        self.pid = pid
        self.database_url = database_url
        self.instance = instance
        self.cpu = 0.0
        self.backends: dict[int, float] = {}
        self.xacts = 0
        self.xacts_at = 0.0  # time.monotonic() of the `xacts` reading
        self.background_per_s = 0.0  # the process's own transactions at rest (lock beats, pollers)

    @classmethod
    async def start(cls, pid: int, database_url: str | None, instance: str | None) -> Meter:
        meter = cls(pid, database_url, instance)
        if instance is not None:
            # Its transactions at rest first, subtracted from the loop's: the database counts every session's.
            # Over 11 s, after 11 s for the warm-up's counters to land: an idle backend publishes its
            # counters within 10 s (PGSTAT_IDLE_INTERVAL).
            await asyncio.sleep(11)
            _, before = await meter._database()
            began = time.monotonic()
            await asyncio.sleep(11)
            _, after = await meter._database()
            meter.background_per_s = (after - before) / (time.monotonic() - began)
        meter.cpu = _cpu(pid)
        meter.backends, meter.xacts = await meter._database()
        meter.xacts_at = time.monotonic()
        return meter

    async def stop(self, updates: int) -> dict[str, Any]:
        cpu = _cpu(self.pid) - self.cpu
        if self.instance is not None:
            # A backend publishes its counters at its next transaction, or after 10 s idle (PGSTAT_IDLE_INTERVAL).
            await asyncio.sleep(11)
        backends, xacts = await self._database()
        background = self.background_per_s * (time.monotonic() - self.xacts_at)
        pg_cpu = sum(after - self.backends.get(pid, 0.0) for pid, after in backends.items())
        per = max(updates, 1)
        return {
            "updates": updates,
            "server_cpu_ms_per_update": round(cpu * 1000 / per, 3),
            "postgres_cpu_ms_per_update": round(pg_cpu * 1000 / per, 3) if self.instance else None,
            "transactions_per_update": round((xacts - self.xacts - background) / per, 2) if self.instance else None,
            "background_transactions_per_s": round(self.background_per_s, 2) if self.instance else None,
        }

    async def _database(self) -> tuple[dict[int, float], int]:
        if self.database_url is None or self.instance is None:
            return {}, 0
        conn = await asyncpg.connect(self.database_url)
        try:
            pids = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE $1",
                f"%:{self.instance}.%",  # <prefix>:<instance>.<per-start suffix>
            )
            xacts = await conn.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        finally:
            await conn.close()
        return {r["pid"]: _cpu(r["pid"]) for r in pids}, int(xacts)


def _cpu(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _pct(phase: Phase, q: float) -> float | None:
    value = percentile(phase.latencies(), q)
    return None if value is None else value * 1000


async def _start_baseline(
    stack: BenchStack, endpoints: list[Endpoint], workdir: Path, *, background: bool
) -> SupervisorProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    bots_file = workdir / "baseline-bots.json"
    bots_file.write_text(json.dumps([{"slug": e.slug, "token": e.token, "secret": e.secret} for e in endpoints]))
    port = free_port()
    name = f"baseline-{'bg' if background else 'inline'}"
    args = ["--port", str(port), "--api", stack.telegram.base_url, "--bots", str(bots_file)]
    started = time.perf_counter()
    server = await stack.spawn(
        name, port, ["bench.baseline", *args, *(["--background"] if background else [])], log_dir=workdir
    )
    prober = Prober()
    try:
        await prober.seconds_until(
            Launched(server, started), lambda h: h.get("status") == "ok", timeout=60, what="baseline up"
        )
    finally:
        await prober.close()
    return server


def _rows(ours: Run, baselines: dict[str, Run], plan: dict[str, Any], workers: WorkersRun) -> list[Row]:
    inline = baselines["baseline_bg_false"]
    background = baselines["baseline_bg_true"]
    ours_tp = ours.closed.throughput()
    inline_tp, background_tp = inline.closed.throughput(), background.closed.throughput()
    best_label, best_tp = max(
        (("in-line", inline_tp or 0.0), ("background", background_tp or 0.0)), key=lambda kv: kv[1]
    )
    ratio = ours_tp / best_tp if ours_tp and best_tp else None
    inline_ratio = ours_tp / inline_tp if ours_tp and inline_tp else None
    p99, base_p99, bg_p99 = ours.open_p99(), inline.open_p99(), background.open_p99()
    repeats = (
        f"median p99 of {plan['open_repeats']} × {plan['open_s']} s"
        if plan["open_repeats"] > 1
        else f"{plan['open_s']} s"
    )
    u, b = ours.usage, inline.usage
    ours_cpu = u["server_cpu_ms_per_update"] + (u["postgres_cpu_ms_per_update"] or 0.0)
    return [
        Row(
            "webhook",
            "ours_throughput",
            f"ours: closed loop, {plan['concurrency']} senders",
            rounded(ours_tp, 1),
            "upd/s",
            "—",
            INFO,
            _phase_note(ours.closed),
        ),
        Row(
            "webhook",
            "baseline_inline_throughput",
            "aiogram baseline (in-line)",
            rounded(inline_tp, 1),
            "upd/s",
            "—",
            INFO,
            _phase_note(inline.closed),
        ),
        Row(
            "webhook",
            "baseline_background_throughput",
            "aiogram baseline (background)",
            rounded(background_tp, 1),
            "upd/s",
            "—",
            INFO,
            _phase_note(background.closed),
        ),
        Row(
            "webhook",
            "throughput_ratio",
            "throughput ours / baseline",
            rounded(ratio, 3),
            "x",
            "≥ 0.7",
            at_least(ratio, 0.7),
            f"vs the faster baseline ({best_label}); vs in-line: {inline_ratio or 0:.2f}",
        ),
        Row(
            "webhook",
            "cpu_per_update_ms",
            "CPU per update: ours / baseline",
            rounded(ours_cpu, 2),
            "ms",
            "—",
            INFO,
            f"ours {u['server_cpu_ms_per_update']} ms + its Postgres backends {u['postgres_cpu_ms_per_update']} ms, "
            f"{u['transactions_per_update']} transactions/update; baseline (in-line) {b['server_cpu_ms_per_update']} ms",
        ),
        Row(
            "webhook",
            "ours_p99_100rps_ms",
            f"ours: p99 at {plan['rate']} upd/s",
            rounded(p99, 1),
            "ms",
            "≤ 50 ms",
            at_most(p99, 50),
            f"{repeats}; p50 {ours.open_p50() or 0:.1f} ms; POST start → reply at the fake",
        ),
        Row(
            "webhook",
            "baseline_p99_100rps_ms",
            f"baseline: p99 at {plan['rate']} upd/s",
            rounded(base_p99, 1),
            "ms",
            "—",
            INFO,
            f"in-line, {repeats}; background variant {bg_p99 or 0:.1f} ms",
        ),
        Row(
            "webhook",
            "p99_ratio",
            "p99 ours / baseline",
            rounded(p99 / base_p99 if p99 and base_p99 else None, 2),
            "x",
            "—",
            INFO,
            "at the fixed rate, vs the in-line baseline",
        ),
        Row(
            "webhook",
            "p99_100rps_delta_ms",
            f"p99 at {plan['rate']} upd/s, ours − baseline",
            rounded(p99 - base_p99 if p99 is not None and base_p99 is not None else None, 2),
            "ms",
            "≤ 2 ms",
            at_most(p99 - base_p99 if p99 is not None and base_p99 is not None else None, 2.0),
            "same run, same fake and load; vs the in-line baseline",
        ),
        Row(
            "webhook",
            "tx_per_start",
            "Postgres transactions per /start",
            u["transactions_per_update"],
            "",
            "≤ 3",
            at_most(u["transactions_per_update"], 3),
            "committed transactions of the database / updates answered, closed loop (every update a /start); "
            f"the process's {u['background_transactions_per_s']}/s at rest (measured just before) subtracted",
        ),
        *workers_rows(ours.closed, ours.cpu_pct or {}, workers),
    ]


def _phase_note(phase: Phase) -> str:
    s = phase.summary()
    errors = sum(s["errors"].values()) + s["dropped"]
    return f"{s['ok']}/{s['sent']} replied, p50 {s['reply_p50_ms']} ms, p99 {s['reply_p99_ms']} ms, errors {errors}"
