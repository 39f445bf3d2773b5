"""Each process's own health, published for the alert sender (which sees other replicas only through
Postgres): whether it can serve, the lock table, and background loops that keep failing.

Every process publishes (the sender included) from its alert loop: only when something changed, and
everything again every `FULL_EVERY_SECONDS`; `not_serving_since` is kept on the database's clock.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import asyncpg

from shared.periodic import LoopState
from supervisor.lifecycle import Lifecycle
from supervisor.locks import Locker

__all__ = ["HealthPublisher", "HealthReport", "LoopWatch", "health_of"]

FULL_EVERY_SECONDS = 60.0
LOOP_WINDOW_SECONDS = 600.0
LOOP_FAILURES = 3  # restarts or failed ticks within the window: "restarting repeatedly"


@dataclass(frozen=True)
class HealthReport:
    tenants: int
    able: int
    cannot_serve: str | None
    locks_unavailable: int
    loops_failing: tuple[str, ...]


class LoopWatch:
    """Which background loops of this process keep failing: three restarts or failed ticks within ten
    minutes, or a periodic loop that made no progress (shared.periodic's `stale`)."""

    def __init__(self, loops: Mapping[str, LoopState], *, window: float = LOOP_WINDOW_SECONDS) -> None:
        self._loops = loops
        self._window = window
        self._samples: dict[str, deque[tuple[float, int]]] = {}

    def failing(self, now: float | None = None) -> tuple[str, ...]:
        now = time.monotonic() if now is None else now
        found = []
        for name, loop in sorted(self._loops.items()):
            samples = self._samples.setdefault(name, deque())
            samples.append((now, loop.failures + loop.restarts))
            while samples and now - samples[0][0] > self._window:
                samples.popleft()
            recent = samples[-1][1] - samples[0][1]
            if loop.stale(now) or recent >= LOOP_FAILURES:
                found.append(name)
        return tuple(found)


def health_of(
    lifecycle: Lifecycle, locker: Locker, loops: LoopWatch, telegram_reachable: Callable[[], bool] = lambda: True
) -> HealthReport:
    """This process's health from its lifecycle, locker and view of Telegram (read-only)."""
    able = lifecycle.census().able
    reason = None
    if lifecycle.slots and not telegram_reachable():
        # It then wants no locks at all, so the locker sees nothing wrong: say why here.
        reason = "cannot reach Telegram (its tenants go to replicas that can)"
    reason = reason or locker.degraded()
    if reason is None and lifecycle.slots and able == 0:
        reason = f"none of its {len(lifecycle.slots)} tenants can start"
    return HealthReport(len(lifecycle.slots), able, reason, locker.unavailable, loops.failing())


_PUBLISH = """
WITH gone AS (
    -- Only on full writes ($7): rows of processes that no longer exist.
    DELETE FROM instance_health h WHERE $7 AND h.instance <> $1
        AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.name = h.instance)
)
INSERT INTO instance_health AS h (instance, tenants, able, cannot_serve, not_serving_since, locks_unavailable,
                                  loops_failing, updated_at)
VALUES ($1, $2, $3, $4, CASE WHEN $4::text IS NOT NULL THEN now() END, $5, $6, now())
ON CONFLICT (instance) DO UPDATE SET
    tenants = EXCLUDED.tenants, able = EXCLUDED.able, cannot_serve = EXCLUDED.cannot_serve,
    not_serving_since = CASE WHEN EXCLUDED.cannot_serve IS NULL THEN NULL
                             ELSE coalesce(h.not_serving_since, now()) END,
    locks_unavailable = EXCLUDED.locks_unavailable, loops_failing = EXCLUDED.loops_failing, updated_at = now()
"""


class HealthPublisher:
    def __init__(
        self, identity: str, report: Callable[[], HealthReport], *, full_every: float = FULL_EVERY_SECONDS
    ) -> None:
        self._identity = identity
        self._report = report
        self._full_every = full_every
        self._published: HealthReport | None = None
        self._full_at: float | None = None

    async def publish_once(self, conn: asyncpg.Connection) -> bool:
        """Write this process's report if it changed (everything, every `full_every`); True if written."""
        report = self._report()
        now = time.monotonic()
        full = self._full_at is None or now - self._full_at >= self._full_every
        if not full and report == self._published:
            return False
        await conn.execute(
            _PUBLISH,
            self._identity,
            report.tenants,
            report.able,
            report.cannot_serve,
            report.locks_unavailable,
            list(report.loops_failing),
            full,
        )
        self._published = report
        if full:
            self._full_at = now
        return True
