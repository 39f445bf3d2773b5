"""Messages and taps per user per minute: one UPSERT per counted update, in Postgres (shared by replicas).

The window is fixed: it opens with a user's first update and lasts a minute. Within it the first
`limit` updates are allowed, the next one gets one short notice, and every later one is dropped in
silence until the window has passed. Exactly one update sees `limit + 1` (the UPSERT serialises on the
user's row), so exactly one notice is sent whatever the number of replicas.
"""

from __future__ import annotations

from enum import Enum

import asyncpg

__all__ = ["HIT_ON_CONFLICT", "WINDOW_SECONDS", "RateVerdict", "count_hit", "verdict"]

WINDOW_SECONDS = 60


class RateVerdict(Enum):
    ALLOW = "allow"  # handle the update
    NOTICE = "notice"  # the first one over the limit: tell the user once, do nothing else
    SILENT = "silent"  # over the limit and already told: drop it


def verdict(hits: int, limit: int) -> RateVerdict:
    """What to do with the update that is the `hits`-th of its window."""
    if hits <= limit:
        return RateVerdict.ALLOW
    return RateVerdict.NOTICE if hits == limit + 1 else RateVerdict.SILENT


# The upsert's tail: `count_hit` runs it alone, `tenant_runtime.arrival` inside its one statement.
HIT_ON_CONFLICT = f"""
    ON CONFLICT (tenant_id, user_id) DO UPDATE SET
        hits = CASE WHEN rate_windows.started_at > now() - interval '{WINDOW_SECONDS} seconds'
                    THEN rate_windows.hits + 1 ELSE 1 END,
        started_at = CASE WHEN rate_windows.started_at > now() - interval '{WINDOW_SECONDS} seconds'
                          THEN rate_windows.started_at ELSE now() END
    RETURNING hits"""
_HIT_SQL = f"INSERT INTO rate_windows (tenant_id, user_id) VALUES ($1, $2) {HIT_ON_CONFLICT}"


async def count_hit(pool: asyncpg.Pool, tenant_id: int, user_id: int, limit: int) -> RateVerdict:
    """Count one update of the user and say what to do with it."""
    hits = await pool.fetchval(_HIT_SQL, tenant_id, user_id)
    return verdict(int(hits), limit)
