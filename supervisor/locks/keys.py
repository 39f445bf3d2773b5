"""Advisory locks in the tenants' namespace, taken and freed in batches on the lock session."""

from __future__ import annotations

import asyncpg

from shared.db import LOCK_NS_TENANT

_UINT32 = 1 << 32

# Keys of our namespace held by any session of this database (two-int4 advisory locks: classid is the
# first key, objid the second as an unsigned oid, objsubid 2).
_LOCKED_KEYS_SQL = """
SELECT objid::bigint AS k FROM pg_locks
WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND objsubid = 2
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND granted
"""
_MY_KEYS_SQL = _LOCKED_KEYS_SQL + " AND pid = pg_backend_pid()"


def _signed(key: int) -> int:
    return key - _UINT32 if key >= _UINT32 // 2 else key


async def locked(conn: asyncpg.Connection, budget: float) -> set[int]:
    """Keys held by any session of this database."""
    return {_signed(r["k"]) for r in await conn.fetch(_LOCKED_KEYS_SQL, LOCK_NS_TENANT, timeout=budget)}


async def mine(conn: asyncpg.Connection, budget: float) -> set[int]:
    """Keys held by this session."""
    return {_signed(r["k"]) for r in await conn.fetch(_MY_KEYS_SQL, LOCK_NS_TENANT, timeout=budget)}


async def try_lock(conn: asyncpg.Connection, keys: list[int], budget: float) -> set[int]:
    """The keys of `keys` this session got (the others are held elsewhere)."""
    rows = await conn.fetch(
        "SELECT k FROM unnest($2::int[]) AS k WHERE pg_try_advisory_lock($1, k)",
        LOCK_NS_TENANT,
        keys,
        timeout=budget,
    )
    return {r["k"] for r in rows}


async def unlock(conn: asyncpg.Connection, keys: list[int], budget: float) -> None:
    await conn.execute(
        "SELECT pg_advisory_unlock($1, k) FROM unnest($2::int[]) AS k", LOCK_NS_TENANT, keys, timeout=budget
    )
