"""One chaos run: set up, warm up, apply the seed's schedule under user traffic, go quiet, judge.

1. A fresh database, the fakes (Telegram with the driver's observer, KIE taking 1-4 s and failing 15%
   of tasks), `tenants` tenants added through the CLI (a seeded third in polling mode), and `replicas`
   supervisor processes, each behind its own Telegram link.
2. Warm-up: until every tenant is served and every replica serves its part (bounded).
3. Chaos: the events of `plan(seed)` at their times, users chatting and buying generations, and the
   monitor checking I1, I2 and I5 every second.
4. Quiet: no new events or messages; wait (bounded) until every message is answered, every generation
   has its outcome, every job is final and every tenant is served, then count replies (I3) and check
   the outcomes and the money (I4).

Every process is stopped at the end, on failure and on Ctrl-C too; the database is dropped by the Bench.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

from bench.chaos.cluster import Clock, Cluster, environment_summary
from bench.chaos.faults import ALL, Faults, run_schedule
from bench.chaos.invariants import Monitor, Step, known_windows, ledger_checks, open_jobs, tally
from bench.chaos.observe import Poller, TelegramWatch
from bench.chaos.report import ChaosResult
from bench.chaos.schedule import plan
from bench.chaos.traffic import Traffic
from bench.common import Bench
from sandbox.kie import FakeKieConfig
from sandbox.stack import ROOT, Stack

TICK_S = 1.0
OVERRUN_S = 150.0
"""Bound on how long the last events may take past the chaos phase (a SIGTERM drain, a restart)."""
LATE_DUPLICATE_S = 2.0
"""Once all is answered, a moment more for a duplicate reply to show up before counting."""
ADD_CONCURRENCY = 4
WARM_CHECKS = 4


@dataclass(frozen=True)
class ChaosConfig:
    seed: int
    minutes: float = 2.0
    tenants: int = 30
    replicas: int = 3
    polling_share: float = 1 / 3
    quiet_s: float = 75.0
    """Cap on the quiet period: the inbox lease (60 s) plus its reclaim pass bound a late reply."""
    warmup_s: float = 60.0
    code_root: Path = ROOT


def initial_modes(config: ChaosConfig) -> dict[str, str]:
    rng = random.Random(config.seed)
    return {
        f"shop-{i:02d}": "polling" if rng.random() < config.polling_share else "webhook" for i in range(config.tenants)
    }


async def run_chaos(bench: Bench, config: ChaosConfig) -> ChaosResult:
    kie = FakeKieConfig(durations=(1.0, 4.0), fail_ratio=0.15, seed=config.seed)
    quiet_fakes = _ClientGone()
    logging.getLogger("aiohttp.server").addFilter(quiet_fakes)
    try:
        async with bench.stack(f"chaos{config.seed}", history_limit=5000, kie_config=kie) as stack:
            return await _run(bench, stack, config)
    finally:
        logging.getLogger("aiohttp.server").removeFilter(quiet_fakes)


class _ClientGone(logging.Filter):
    """The fakes' servers log a traceback when a client hangs up mid-request, which a hanging KIE or a
    cut Telegram link makes routine here; anything else still gets through."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, ConnectionResetError)


async def _run(bench: Bench, stack: Stack, config: ChaosConfig) -> ChaosResult:
    clock = Clock()
    cluster = Cluster(stack, run_id=f"c{bench.run_id}", code_root=config.code_root)
    watch = TelegramWatch(cluster, clock.now)
    stack.telegram.observe(watch)
    monitor = Monitor(cluster, watch)
    poller = Poller()
    traffic: Traffic | None = None
    ticker: asyncio.Task[None] | None = None
    info: dict[str, object] = {"code_root": str(config.code_root), "env": environment_summary()}
    try:
        modes = initial_modes(config)
        bench.log(f"  chaos seed {config.seed}: {config.tenants} tenants through the CLI, {config.replicas} replicas")
        started = time.monotonic()
        await _add_tenants(cluster, modes)
        for index in range(config.replicas):
            await cluster.add_replica(f"r{index + 1}")
        await asyncio.gather(*(cluster.start(r) for r in cluster.replicas.values()))
        info["setup_s"] = round(time.monotonic() - started, 1)
        info["warmup_s"] = await _warm_up(monitor, poller, cluster, config.warmup_s)
        info["unserved_after_warmup"] = sorted(s for s, p in monitor.problems.items() if p is not None)

        events = plan(config.seed, seconds=config.minutes * 60, replicas=list(cluster.replicas), tenants=modes)
        traffic = Traffic(cluster, clock.now, config.seed)
        faults = Faults(cluster, monitor, traffic, clock.now)
        watch.shift(clock.now())
        clock.start()
        monitor.record(Step(0.0, "start", "all", "chaos begins", f"{len(events)} events planned", ALL))
        traffic.start()
        ticker = asyncio.create_task(_tick_forever(monitor, poller, cluster, clock))
        bench.log(f"  chaos seed {config.seed}: {len(events)} events over {config.minutes:g} min")
        try:
            await asyncio.wait_for(run_schedule(faults, events, clock.now), timeout=config.minutes * 60 + OVERRUN_S)
        except TimeoutError:
            monitor.record(Step(clock.now(), "schedule", "all", "cut short", error=f"overran by {OVERRUN_S:.0f}s"))

        traffic.stop()
        quiet_from = clock.now()
        info["settled"] = await _quiet(traffic, monitor, stack.database_url, clock, config.quiet_s)
        info["quiet_s"] = round(clock.now() - quiet_from, 1)
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        ticker = None
        monitor.close(clock.now())
        ledger, ledger_failures = await ledger_checks(stack.database_url)
        info |= {
            "checks": monitor.ticks,
            "getupdates_409": watch.conflict_answers(),
            "unattributed_calls": watch.unattributed,
            "polls_in_freeze_window": watch.freeze_window_polls,
            "error_notices": sum(u.counts(cluster)["notice"] for u in traffic.users),
            "wizards_aborted": sum(u.aborted for u in traffic.shoppers),
            "logs": str(stack.workdir),
        }
        return ChaosResult(
            seed=config.seed,
            minutes=config.minutes,
            tenants=config.tenants,
            replicas=config.replicas,
            planned=events,
            steps=monitor.steps[1:],
            episodes=monitor.episodes,
            replies=tally(traffic, ("start", "balance"), known_windows(monitor.steps)),
            outcomes=tally(traffic, ("outcome",), known_windows(monitor.steps)),
            ledger=ledger,
            ledger_failures=ledger_failures,
            events_applied=faults.applied,
            info=info,
        )
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        if traffic is not None:
            await traffic.close()
        await poller.close()
        await cluster.stop_all()


async def _add_tenants(cluster: Cluster, modes: dict[str, str]) -> None:
    gate = asyncio.Semaphore(ADD_CONCURRENCY)

    async def one(slug: str, mode: str) -> None:
        async with gate:
            await cluster.new_tenant(slug, mode)

    # Registered in slug order (bot ids follow), added concurrently.
    await asyncio.gather(*(one(slug, mode) for slug, mode in sorted(modes.items())))


async def _warm_up(monitor: Monitor, poller: Poller, cluster: Cluster, limit: float) -> float:
    """Seconds until the replicas have settled (or `limit`): every tenant served and every replica
    serving its part, for WARM_CHECKS checks in a row. Nothing is recorded as a violation yet."""
    started = time.monotonic()
    settled = 0
    while time.monotonic() - started < limit and settled < WARM_CHECKS:
        problems = monitor.evaluate(await poller.views(list(cluster.replicas.values())))
        shared = all(monitor.active_on(name) for name in cluster.replicas)
        settled = settled + 1 if shared and all(p is None for p in problems.values()) else 0
        await asyncio.sleep(0.5)
    return round(time.monotonic() - started, 1)


async def _tick_forever(monitor: Monitor, poller: Poller, cluster: Cluster, clock: Clock) -> None:
    while True:
        started = time.monotonic()
        views = await poller.views([r for r in cluster.replicas.values() if not r.frozen])
        monitor.check(clock.now(), views)
        await asyncio.sleep(max(0.0, TICK_S - (time.monotonic() - started)))


async def _quiet(traffic: Traffic, monitor: Monitor, dsn: str, clock: Clock, limit: float) -> bool:
    """Wait until everything is answered, every job final and every tenant served; False at `limit`."""
    deadline = clock.now() + limit
    while clock.now() < deadline:
        if (
            traffic.settled()
            and monitor.ticks > 0
            and all(p is None for p in monitor.problems.values())
            and await open_jobs(dsn) == 0
        ):
            await asyncio.sleep(LATE_DUPLICATE_S)
            return True
        await asyncio.sleep(1.0)
    return False
