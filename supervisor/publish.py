"""Each process publishes its tenant slots' runtime states to Postgres (`tenant_runtime_states`).

The states live in the process's memory (supervisor.lifecycle); publishing them lets `tenants show`
and `tenants list` tell the truth from any shell, and lets the one alert sender see every replica.

Cheap at rest: a tick writes only the slots whose state or last error changed since the last write,
in ONE statement (1,000 idle tenants cost nothing). Every `FULL_EVERY_SECONDS` everything is written
again, which repairs rows someone else removed and drops the rows of processes that are gone. A failed
write leaves the last published view as it was, so the next tick retries the same changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import asyncpg

from shared.redact import REDACTOR
from supervisor.lifecycle import Lifecycle
from supervisor.slot_state import State

__all__ = ["FULL_EVERY_SECONDS", "PUBLISH_SECONDS", "TROUBLED", "RuntimePublisher", "SlotReport", "SlotReports"]

PUBLISH_SECONDS = 2.0
FULL_EVERY_SECONDS = 60.0
ERROR_CHARS = 500
# States that start (or continue) "trouble"; STARTING continues whatever came before it, because a
# runtime in backoff passes through STARTING on every retry.
TROUBLED = (State.BACKOFF, State.QUARANTINED, State.TOKEN_INVALID)
_HEALTHY = (State.STANDBY, State.ACTIVE, State.STOPPED)


@dataclass(frozen=True)
class SlotReport:
    state: State
    last_error: str | None


class SlotReports:
    """What this process's slots are doing now (a read-only view of the lifecycle), called every tick.

    A slot's report is rebuilt only when its state or error changed. At rest a tick then allocates
    nothing per slot: 10,000 fresh objects every tick survived into the garbage collector's oldest
    generation and brought on its full passes (stalls of the event loop of a quarter of a second).
    """

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle
        self._last: dict[int, SlotReport] = {}
        self._version: int | None = None  # the lifecycle's version `_last` was built at

    def __call__(self) -> dict[int, SlotReport]:
        """The same mapping as last time while no slot changed (a state and its error change together)."""
        if self._version == self._lifecycle.version:
            return self._last
        self._version = self._lifecycle.version
        last, current = self._last, {}
        for tid, slot in self._lifecycle.slots.items():
            report = last.get(tid)
            if report is None or report.state is not slot.state or report.last_error is not slot.last_error:
                report = SlotReport(slot.state, slot.last_error)
            current[tid] = report
        self._last = current
        return current


_TROUBLED_SQL = ", ".join(f"'{s.value}'" for s in TROUBLED)
_HEALTHY_SQL = ", ".join(f"'{s.value}'" for s in _HEALTHY)

_UPSERT = f"""
INSERT INTO tenant_runtime_states AS s (tenant_id, instance, state, last_error, troubled_since)
SELECT r.tenant_id, $1, r.state, r.last_error, CASE WHEN r.state IN ({_TROUBLED_SQL}) THEN now() END
FROM unnest($2::bigint[], $3::text[], $4::text[]) AS r (tenant_id, state, last_error)
-- A tenant removed a moment ago has no row to refer to: skipped, not a failed statement for all.
WHERE EXISTS (SELECT 1 FROM tenants t WHERE t.id = r.tenant_id)
ON CONFLICT (tenant_id, instance) DO UPDATE SET
    state = EXCLUDED.state,
    last_error = EXCLUDED.last_error,
    since = CASE WHEN s.state = EXCLUDED.state THEN s.since ELSE now() END,
    troubled_since = CASE
        WHEN EXCLUDED.state IN ({_HEALTHY_SQL}) THEN NULL
        WHEN EXCLUDED.state IN ({_TROUBLED_SQL}) THEN coalesce(s.troubled_since, now())
        ELSE s.troubled_since END,
    updated_at = now()
-- The full write repeats every row: an unchanged one is left alone (no dead tuple, `updated_at` stays
-- the time of the last change).
WHERE (s.state, s.last_error) IS DISTINCT FROM (EXCLUDED.state, EXCLUDED.last_error)
"""

# Slots this process no longer has (a tenant disabled or removed here) go in the same statement.
_PUBLISH = f"""
WITH dropped AS (
    DELETE FROM tenant_runtime_states WHERE instance = $1 AND tenant_id = ANY($5::bigint[])
)
{_UPSERT}
"""

# The full write replaces this process's rows by what it has now and drops rows of process starts that
# are gone (their `instances` row is deleted at a clean shutdown, or an hour after their last
# heartbeat). The rows it deletes are never the rows it upserts: one statement must not touch a row twice.
_PUBLISH_FULL = f"""
WITH dropped AS (
    DELETE FROM tenant_runtime_states s
    WHERE CASE WHEN s.instance = $1 THEN NOT (s.tenant_id = ANY($2::bigint[]))
               ELSE NOT EXISTS (SELECT 1 FROM instances i WHERE i.name = s.instance) END
)
{_UPSERT}
"""


class RuntimePublisher:
    """Writes this process's slot reports. `reports` returns the very same mapping while nothing changed
    and a new one after any change (`SlotReports` does): an unchanged mapping is not even compared."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        identity: str,
        reports: Callable[[], Mapping[int, SlotReport]],
        *,
        full_every: float = FULL_EVERY_SECONDS,
    ) -> None:
        self._pool = pool
        self._identity = identity
        self._reports = reports
        self._full_every = full_every
        self._published: dict[int, SlotReport] = {}
        self._seen: Mapping[int, SlotReport] | None = None  # the reports `_published` was made from
        self._full_at: float | None = None  # monotonic time of the last full write

    async def publish_once(self) -> bool:
        """Write what changed (everything, every `full_every`); True if a statement ran."""
        reports = self._reports()
        now = time.monotonic()
        full = self._full_at is None or now - self._full_at >= self._full_every
        if reports is self._seen and not full:
            return False  # the very reports written last time: nothing changed (at rest, every tick)
        current = {tid: _clean(report) for tid, report in reports.items()}
        changed = current if full else {t: r for t, r in current.items() if _differs(self._published.get(t), r)}
        gone = [tid for tid in self._published if tid not in current]
        if not (full or changed or gone):
            self._seen = reports
            return False
        ids = list(changed)
        rows = (ids, [changed[t].state.value for t in ids], [changed[t].last_error for t in ids])
        if full:
            await self._pool.execute(_PUBLISH_FULL, self._identity, *rows)
        else:
            await self._pool.execute(_PUBLISH, self._identity, *rows, gone)
        self._published, self._seen = current, reports
        if full:
            self._full_at = now
        return True


def _differs(published: SlotReport | None, report: SlotReport) -> bool:
    # The same object (the common case at rest) is decided without building two tuples to compare.
    return published is not report and published != report


def _clean(report: SlotReport) -> SlotReport:
    """Redacted again here: the row is read by other processes and by operators' shells."""
    if report.last_error is None:
        return report
    return SlotReport(report.state, REDACTOR.redact(report.last_error)[:ERROR_CHARS])
