"""What /status and /status.json show: this process's slots joined with the database's view (lock
holders, today's generations, live instances). Read in one bounded pass, so the pages answer with
what the process knows even when the database hangs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from shared.logs import get_logger
from shared.redact import REDACTOR
from supervisor import __version__
from supervisor.lifecycle import Lifecycle
from supervisor.slot import Slot

__all__ = ["InstanceStatus", "LockInfo", "Snapshot", "TenantStatus", "read_snapshot"]

log = get_logger(__name__)

INSTANCE_ALIVE_SECONDS = 60
DB_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class LockInfo:
    instance: str
    since: float
    heartbeat_at: float


@dataclass(frozen=True)
class TenantStatus:
    id: int
    slug: str
    display_name: str
    state: str
    restarts: int
    last_error: str | None
    next_attempt_at: float | None
    locked_here: bool
    lock: LockInfo | None
    last_update_at: float | None
    generations_today: dict[str, int]


@dataclass(frozen=True)
class InstanceStatus:
    name: str
    host: str
    pid: int
    version: str
    started_at: float
    heartbeat_at: float


@dataclass(frozen=True)
class Snapshot:
    instance: str
    version: str
    generated_at: float
    locks_held: int
    db_error: str | None
    tenants: list[TenantStatus] = field(default_factory=list)
    instances: list[InstanceStatus] = field(default_factory=list)


async def read_snapshot(
    instance: str, lifecycle: Lifecycle, pool: asyncpg.Pool, locker_held: Callable[[], int]
) -> Snapshot:
    slots = sorted(lifecycle.slots.values(), key=lambda s: s.config.slug)
    ids = [s.config.id for s in slots]
    locks: dict[int, LockInfo] = {}
    generations: dict[int, dict[str, int]] = {}
    instances: list[InstanceStatus] = []
    db_error: str | None = None
    try:
        # Bounded: the page must answer (with what the process knows) even when the DB hangs.
        async with asyncio.timeout(DB_TIMEOUT_SECONDS), pool.acquire() as conn:
            for row in await conn.fetch(_LOCKS_SQL, ids):
                locks[row["tenant_id"]] = LockInfo(row["instance"], row["since"], row["heartbeat_at"])
            for row in await conn.fetch(_GENERATIONS_SQL, ids):
                generations.setdefault(row["tenant_id"], {})[row["status"]] = row["n"]
            instances = [InstanceStatus(**dict(row)) for row in await conn.fetch(_INSTANCES_SQL)]
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        db_error = type(exc).__name__
        log.warning("status: database query failed", error=db_error)
    return Snapshot(
        instance=instance,
        version=__version__,
        generated_at=time.time(),
        locks_held=locker_held(),
        db_error=db_error,
        tenants=[_tenant(s, locks.get(s.config.id), generations.get(s.config.id, {})) for s in slots],
        instances=instances,
    )


_LOCKS_SQL = """
    SELECT tenant_id, instance, extract(epoch FROM since)::float8 AS since,
           extract(epoch FROM heartbeat_at)::float8 AS heartbeat_at
    FROM lock_holders WHERE tenant_id = ANY($1::bigint[])"""

# "Today" is the UTC day, the same for every operator and instance.
_GENERATIONS_SQL = """
    SELECT tenant_id, status, count(*)::int AS n FROM jobs
    WHERE tenant_id = ANY($1::bigint[])
      AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
    GROUP BY tenant_id, status"""

_INSTANCES_SQL = f"""
    SELECT name, host, pid, version, extract(epoch FROM started_at)::float8 AS started_at,
           extract(epoch FROM heartbeat_at)::float8 AS heartbeat_at
    FROM instances WHERE heartbeat_at > now() - interval '{INSTANCE_ALIVE_SECONDS} seconds'
    ORDER BY started_at"""


def _tenant(slot: Slot, lock: LockInfo | None, generations: dict[str, int]) -> TenantStatus:
    config = slot.config
    return TenantStatus(
        id=config.id,
        slug=config.slug,
        display_name=config.display_name,
        state=slot.state.value,
        restarts=slot.restart_count,
        last_error=REDACTOR.redact(slot.last_error) if slot.last_error else None,
        next_attempt_at=slot.next_attempt_at,
        locked_here=slot.locked,
        lock=lock,
        last_update_at=slot.runtime.last_update_at if slot.runtime is not None else None,
        generations_today=dict(sorted(generations.items())),
    )
