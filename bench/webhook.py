"""Figure 4: webhook throughput and latency at 100 tenants, against a bare aiogram baseline.

Same machine, same fake Telegram, same users and the same load for three servers in turn: our
supervisor, then bench/baseline.py with handle_in_background=False, then with True. Each gets one
unmeasured warm-up pass, a closed loop (C senders, bounded count and time) and an open loop at a fixed
rate. Latency is webhook POST start → the bot's reply reaching the fake (see bench/loadgen.py).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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
    rounded,
    stop,
    webhook_secrets,
)
from bench.loadgen import Endpoint, LoadGen, Phase, User, closed_loop, is_menu, open_loop
from shared.testing.stack import ROOT, SupervisorProcess, free_port

TENANTS = 100
HERE = Path(__file__).resolve().parent


def _plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {"users_per_tenant": 3, "concurrency": 16, "count": 400, "closed_s": 20, "rate": 100, "open_s": 4}
    return {"users_per_tenant": 10, "concurrency": 32, "count": 3000, "closed_s": 60, "rate": 100, "open_s": 15}


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
        ours = await _run_server(bench, gen, port, users, plan, "ours", profile_pid=launched.pid)
        details["ours_shutdown_s"] = round(await stop(launched.sup), 2)

        baselines: dict[str, dict[str, Phase]] = {}
        for background in (False, True):
            label = f"baseline_bg_{str(background).lower()}"
            server = await _start_baseline(stack, endpoints, bench.workdir / "webhook", background=background)
            try:
                baselines[label] = await _run_server(bench, gen, server.port, users, plan, label)
            finally:
                await stop(server)
    if "profile" in ours:
        details["profile"] = ours.pop("profile")
    details["ours"] = {name: phase.summary() for name, phase in ours.items()}
    for label, phases in baselines.items():
        details[label] = {name: phase.summary() for name, phase in phases.items()}
    return FigureResult(rows=_rows(ours, baselines, plan), details=details)


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


async def _run_server(
    bench: Bench,
    gen: LoadGen,
    port: int,
    users: list[User],
    plan: dict[str, Any],
    label: str,
    *,
    profile_pid: int | None = None,
) -> dict[str, Any]:
    bench.log(f"  webhook [{label}]: warm-up pass")
    await closed_loop(
        gen, port, users, concurrency=plan["concurrency"], count=len(users), seconds=plan["closed_s"], name="warmup"
    )
    bench.log(f"  webhook [{label}]: closed loop, {plan['concurrency']} senders, {plan['count']} updates")
    out: dict[str, Any] = {}
    if bench.profile and profile_pid is not None:
        profiler = Profiler(profile_pid, HERE / "profiles" / f"webhook-{label}.txt", seconds=plan["closed_s"])
        async with profiler:
            out["closed"] = await _closed(gen, port, users, plan)
        out["profile"] = profiler.summary()
    else:
        out["closed"] = await _closed(gen, port, users, plan)
    bench.log(f"  webhook [{label}]: open loop, {plan['rate']}/s for {plan['open_s']} s")
    out["open"] = await open_loop(gen, port, users, rate=plan["rate"], seconds=plan["open_s"], name="open")
    return out


async def _closed(gen: LoadGen, port: int, users: list[User], plan: dict[str, Any]) -> Phase:
    return await closed_loop(
        gen,
        port,
        users,
        concurrency=plan["concurrency"],
        count=plan["count"],
        seconds=plan["closed_s"],
        name="closed",
    )


async def _start_baseline(
    stack: BenchStack, endpoints: list[Endpoint], workdir: Path, *, background: bool
) -> SupervisorProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    bots_file = workdir / "baseline-bots.json"
    bots_file.write_text(json.dumps([{"slug": e.slug, "token": e.token, "secret": e.secret} for e in endpoints]))
    port = free_port()
    name = f"baseline-{'bg' if background else 'inline'}"
    log_path = workdir / f"{name}.log"
    handle = log_path.open("ab")
    args = ["--port", str(port), "--api", stack.telegram.base_url, "--bots", str(bots_file)]
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.baseline",
        *args,
        *(["--background"] if background else []),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    handle.close()
    server = SupervisorProcess(name, port, proc, log_path)
    stack.processes.append(server)
    prober = Prober()
    try:
        await prober.seconds_until(
            Launched(server, started), lambda h: h.get("status") == "ok", timeout=60, what="baseline up"
        )
    finally:
        await prober.close()
    return server


def _rows(ours: dict[str, Any], baselines: dict[str, dict[str, Phase]], plan: dict[str, Any]) -> list[Row]:
    closed: Phase = ours["closed"]
    opened: Phase = ours["open"]
    inline = baselines["baseline_bg_false"]
    background = baselines["baseline_bg_true"]
    ours_tp = closed.throughput()
    best_label, best = max(
        (("in-line", inline), ("background", background)), key=lambda kv: kv[1]["closed"].throughput() or 0
    )
    best_tp = best["closed"].throughput()
    ratio = ours_tp / best_tp if ours_tp and best_tp else None
    inline_ratio = ours_tp / (inline["closed"].throughput() or 0) if ours_tp and inline["closed"].throughput() else None
    p99 = _p99(opened)
    base_p99 = _p99(inline["open"])
    bg_p99 = _p99(background["open"])
    c = plan["concurrency"]
    rows = [
        Row(
            "webhook",
            "ours_throughput",
            f"ours: closed loop, {c} senders",
            rounded(ours_tp, 1),
            "upd/s",
            "—",
            INFO,
            _phase_note(closed),
        ),
        Row(
            "webhook",
            "baseline_inline_throughput",
            "aiogram baseline (in-line)",
            rounded(inline["closed"].throughput(), 1),
            "upd/s",
            "—",
            INFO,
            _phase_note(inline["closed"]),
        ),
        Row(
            "webhook",
            "baseline_background_throughput",
            "aiogram baseline (background)",
            rounded(background["closed"].throughput(), 1),
            "upd/s",
            "—",
            INFO,
            _phase_note(background["closed"]),
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
            "ours_p99_100rps_ms",
            f"ours: p99 at {plan['rate']} upd/s",
            rounded(p99, 1),
            "ms",
            "≤ 50 ms",
            at_most(p99, 50),
            f"open loop {plan['open_s']} s; p50 {_p50(opened) or 0:.1f} ms; " + _phase_note(opened),
        ),
        Row(
            "webhook",
            "baseline_p99_100rps_ms",
            f"baseline: p99 at {plan['rate']} upd/s",
            rounded(base_p99, 1),
            "ms",
            "—",
            INFO,
            f"in-line; background variant p99 {bg_p99 or 0:.1f} ms",
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
    ]
    return rows


def _p99(phase: Phase) -> float | None:
    value = phase.summary()["reply_p99_ms"]
    return float(value) if value is not None else None


def _p50(phase: Phase) -> float | None:
    value = phase.summary()["reply_p50_ms"]
    return float(value) if value is not None else None


def _phase_note(phase: Phase) -> str:
    s = phase.summary()
    errors = sum(s["errors"].values()) + s["dropped"]
    return f"{s['ok']}/{s['sent']} replied, p50 {s['reply_p50_ms']} ms, p99 {s['reply_p99_ms']} ms, errors {errors}"
