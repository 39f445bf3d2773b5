"""The other processes' lockers: each beat publishes this one's ability and reads theirs from `lockers`,
and terminates the lock session of a peer that stopped beating."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from shared.db import LOCK_SESSION
from shared.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Peer:
    identity: str
    able: int
    held: int
    fresh: bool  # beat within the trust window: alive, counted in the share
    recent: bool  # beat within the last beat or so: may be handed tenants (see Locker._release)


_PEERS_SQL = f"""
WITH me AS (
    INSERT INTO lockers (identity, able, held, beat_at) VALUES ($1, $2, $3, now())
    ON CONFLICT (identity) DO UPDATE SET able = EXCLUDED.able, held = EXCLUDED.held, beat_at = now()
)
SELECT l.identity, l.able, l.held, l.beat_at > now() - make_interval(secs => $4) AS fresh,
       l.beat_at > now() - make_interval(secs => $5) AS recent,
       (SELECT a.pid FROM pg_stat_activity a WHERE a.datname = current_database()
          AND a.application_name = left('{LOCK_SESSION}' || l.identity, 63) LIMIT 1) AS pid
FROM lockers l WHERE l.identity <> $1
"""


async def publish_and_read(
    conn: asyncpg.Connection,
    identity: str,
    able: int,
    held: int,
    *,
    trust_window: float,
    recent_window: float,
    budget: float,
) -> list[asyncpg.Record]:
    """Write this locker's row, and read every other locker's (its lock session's pid, if it has one)."""
    return await conn.fetch(_PEERS_SQL, identity, able, held, trust_window, recent_window, timeout=budget)


async def fence_silent(
    conn: asyncpg.Connection, identity: str, rows: list[asyncpg.Record], trust_window: float, budget: float
) -> None:
    """Terminate the lock session of every peer silent for three trust windows: that frees its locks."""
    silent_for = 3 * trust_window
    stale = [r["identity"] for r in rows if not r["fresh"]]
    if not stale:
        return
    fenced = await conn.fetch(
        """SELECT l.identity, pg_terminate_backend(a.pid) AS done FROM lockers l
           JOIN pg_stat_activity a ON a.datname = current_database()
            AND a.application_name = left($3 || l.identity, 63)
           WHERE l.identity = ANY($1::text[]) AND l.beat_at < now() - make_interval(secs => $2)""",
        stale,
        silent_for,
        LOCK_SESSION,
        timeout=budget,
    )
    for row in fenced:
        log.warning("lock session of a silent process terminated", peer=row["identity"], done=row["done"])
    await conn.execute(
        "DELETE FROM lockers WHERE beat_at < now() - interval '10 minutes' AND identity <> $1",
        identity,
        timeout=budget,
    )
