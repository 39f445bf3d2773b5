"""The runtime of tenants as Postgres knows it, for operators' shells and the alert sender.

Every supervisor process publishes its slots' states (supervisor.publish); this module reads them back
and says, per tenant, one state for the tenant as a whole: `active` if some live process serves it,
else the most telling state a live process reports (a rejected token before a quarantine before a
backoff ...), `not_running` when no live process reports it at all, `disabled` for a disabled tenant.
A report counts only while its process's `instances` heartbeat (every 10 s) is fresh, so a process
killed with SIGKILL stops counting within `FRESH_SECONDS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.redact import REDACTOR
from supervisor.slot_state import State
from tenant_runtime.config import TenantStatus

__all__ = [
    "FRESH_SECONDS",
    "NOT_RUNNING",
    "STATE_CHOICES",
    "InstanceReport",
    "TenantRuntimeView",
    "read_runtime",
]

FRESH_SECONDS = 30.0  # instances beat every 10 s: three missed beats and the process is gone
LOCK_STALE_SECONDS = 25.0  # lock_holders rows are touched every 10 s by their holder
NOT_RUNNING = "not_running"
# The tenant's state when live processes disagree: being served wins, then what needs the operator most.
_PRECEDENCE = (
    State.ACTIVE,
    State.TOKEN_INVALID,
    State.QUARANTINED,
    State.BACKOFF,
    State.STARTING,
    State.STANDBY,
    State.STOPPED,
)
# A tenant nobody should serve shows why: its status (disabled by an operator, pending approval, paused by
# its owner).
_UNSERVED = tuple(s.value for s in TenantStatus if not s.served)
STATE_CHOICES = (*(s.value for s in _PRECEDENCE), NOT_RUNNING, *_UNSERVED)
OPEN_JOB_STATUSES = ("created", "submitted", "succeeded")


@dataclass(frozen=True)
class InstanceReport:
    instance: str
    host: str | None
    state: State
    since: datetime
    troubled_since: datetime | None
    last_error: str | None
    updated_at: datetime


@dataclass(frozen=True)
class TenantRuntimeView:
    tenant_id: int
    status: str  # the registry's: enabled, disabled, token_invalid
    state: str  # one of STATE_CHOICES
    reported_by: str | None
    since: datetime | None
    last_error: str | None  # redacted
    lock_holder: str | None
    lock_host: str | None
    lock_pid: int | None
    lock_age_s: float | None
    open_jobs: int
    last_update_at: datetime | None
    reports: tuple[InstanceReport, ...]
    now: datetime  # the database's clock when this was read: ages are computed against it

    def runtime_line(self) -> str:
        if self.lock_holder is None or self.lock_age_s is None:
            return "not running (no supervisor holds its lock)"
        where = f"{self.lock_holder} on {self.lock_host} (pid {self.lock_pid})" if self.lock_host else self.lock_holder
        if self.lock_age_s > LOCK_STALE_SECONDS:
            return f"probably not running: lock held by {where}, last heartbeat {self.lock_age_s:.0f} s ago"
        return f"running: lock held by {where}, heartbeat {self.lock_age_s:.1f} s ago"

    def age_s(self, moment: datetime | None) -> float | None:
        return None if moment is None else round(max(0.0, (self.now - moment).total_seconds()), 1)

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "state_since": _iso(self.since),
            "state_age_s": self.age_s(self.since),
            "state_reported_by": self.reported_by,
            "runtime": self.runtime_line(),
            "lock_holder": self.lock_holder,
            "lock_heartbeat_age_s": None if self.lock_age_s is None else round(self.lock_age_s, 1),
            "last_error": self.last_error,
            "open_jobs": self.open_jobs,
            "last_update_at": _iso(self.last_update_at),
            "last_update_age_s": self.age_s(self.last_update_at),
            "instances": [
                {
                    "instance": r.instance,
                    "host": r.host,
                    "state": r.state.value,
                    "since": _iso(r.since),
                    "troubled_since": _iso(r.troubled_since),
                    "last_error": r.last_error,
                }
                for r in self.reports
            ],
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


_TENANTS_SQL = """
SELECT t.id, t.status, t.last_error, l.instance AS holder, hi.host AS holder_host, hi.pid AS holder_pid,
       extract(epoch FROM now() - l.heartbeat_at)::float8 AS holder_age,
       -- update ids only grow for a bot, so the newest update is one index probe away
       (SELECT u.received_at FROM updates_inbox u WHERE u.tenant_id = t.id
        ORDER BY u.update_id DESC LIMIT 1) AS last_update_at,
       now() AS db_now
FROM tenants t
LEFT JOIN lock_holders l ON l.tenant_id = t.id
LEFT JOIN instances hi ON hi.name = l.instance
WHERE $1::bigint[] IS NULL OR t.id = ANY($1::bigint[])
ORDER BY t.slug
"""

_REPORTS_SQL = f"""
SELECT s.tenant_id, s.instance, i.host, s.state, s.since, s.troubled_since, s.last_error, s.updated_at
FROM tenant_runtime_states s
JOIN instances i ON i.name = s.instance AND i.heartbeat_at > now() - make_interval(secs => {FRESH_SECONDS})
WHERE $1::bigint[] IS NULL OR s.tenant_id = ANY($1::bigint[])
ORDER BY s.tenant_id, s.instance
"""

# The partial index jobs_open covers exactly these statuses: only open jobs are read.
_OPEN_JOBS_SQL = f"""
SELECT tenant_id, count(*)::int AS n FROM jobs
WHERE status IN ({", ".join(f"'{s}'" for s in OPEN_JOB_STATUSES)})
  AND ($1::bigint[] IS NULL OR tenant_id = ANY($1::bigint[]))
GROUP BY tenant_id
"""


async def read_runtime(pool: asyncpg.Pool, tenant_ids: Sequence[int] | None = None) -> dict[int, TenantRuntimeView]:
    """The runtime view of the given tenants (all when None), keyed by tenant id."""
    ids = None if tenant_ids is None else list(tenant_ids)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        tenants = await conn.fetch(_TENANTS_SQL, ids)
        reports = await conn.fetch(_REPORTS_SQL, ids)
        open_jobs = {r["tenant_id"]: r["n"] for r in await conn.fetch(_OPEN_JOBS_SQL, ids)}
    by_tenant: dict[int, list[InstanceReport]] = {}
    for r in reports:
        by_tenant.setdefault(r["tenant_id"], []).append(
            InstanceReport(
                instance=r["instance"],
                host=r["host"],
                state=State(r["state"]),
                since=r["since"],
                troubled_since=r["troubled_since"],
                last_error=_redacted(r["last_error"]),
                updated_at=r["updated_at"],
            )
        )
    return {row["id"]: _view(row, tuple(by_tenant.get(row["id"], ())), open_jobs.get(row["id"], 0)) for row in tenants}


def _view(row: asyncpg.Record, reports: tuple[InstanceReport, ...], open_jobs: int) -> TenantRuntimeView:
    chosen = _telling(reports, row["holder"])
    if chosen is not None:
        state: str = chosen.state.value
    else:
        state = row["status"] if row["status"] in _UNSERVED else NOT_RUNNING
    return TenantRuntimeView(
        tenant_id=row["id"],
        status=row["status"],
        state=state,
        reported_by=chosen.instance if chosen else None,
        since=chosen.since if chosen else None,
        last_error=(chosen.last_error if chosen and chosen.last_error else None) or _redacted(row["last_error"]),
        lock_holder=row["holder"],
        lock_host=row["holder_host"],
        lock_pid=row["holder_pid"],
        lock_age_s=row["holder_age"],
        open_jobs=open_jobs,
        last_update_at=row["last_update_at"],
        reports=reports,
        now=row["db_now"],
    )


def _telling(reports: tuple[InstanceReport, ...], holder: str | None) -> InstanceReport | None:
    """The report that says the most about the tenant: the lock holder's when it serves."""
    for state in _PRECEDENCE:
        matching = [r for r in reports if r.state == state]
        if matching:
            return next((r for r in matching if r.instance == holder), matching[0])
    return None


def _redacted(text: str | None) -> str | None:
    return REDACTOR.redact(text) if text else None
