"""`lock_holders`: which process holds which tenant, for people reading /status (liveness is the
`lockers` row, written on every beat)."""

from __future__ import annotations

import asyncpg


async def clear(conn: asyncpg.Connection, identity: str) -> None:
    """A new lock session holds nothing: forget every row of this process."""
    await conn.execute("DELETE FROM lock_holders WHERE instance = $1", identity)


async def touch(conn: asyncpg.Connection, identity: str, budget: float) -> None:
    await conn.execute("UPDATE lock_holders SET heartbeat_at = now() WHERE instance = $1", identity, timeout=budget)


async def record(conn: asyncpg.Connection, identity: str, tenants: set[int], budget: float) -> None:
    # Only tenants that still exist: one removed a moment ago must not fail the statement for all.
    await conn.execute(
        """INSERT INTO lock_holders (tenant_id, instance)
           SELECT t, $1 FROM unnest($2::bigint[]) t WHERE EXISTS (SELECT 1 FROM tenants WHERE id = t)
           ON CONFLICT (tenant_id) DO UPDATE SET instance = EXCLUDED.instance, since = now(),
           heartbeat_at = now()""",
        identity,
        list(tenants),
        timeout=budget,
    )


async def forget(conn: asyncpg.Connection, identity: str, tenants: list[int], budget: float) -> None:
    await conn.execute(
        "DELETE FROM lock_holders WHERE instance = $1 AND tenant_id = ANY($2::bigint[])",
        identity,
        tenants,
        timeout=budget,
    )
