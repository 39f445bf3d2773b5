"""Durable acceptance of Telegram updates: each update id is handled once per tenant.

A row is written before the update is handled; Telegram's redelivery, or the same update reaching
the other replica, finds it. A claim is taken over when its process has no Postgres session left
(it was killed: its sockets closed at once) or, whatever happened, after a lease. A process that is
shutting down keeps its pool sessions while it drains, so its claims are not taken from under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.db import PROCESS_SESSIONS

RECLAIM_AFTER_SECONDS = 60
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Pending:
    update_id: int
    payload: dict[str, Any]


def _claim_open(lease_param: int, sessions_param: int) -> str:
    """SQL for: a claim on an update may be taken over. Its process has no Postgres session left (it
    is gone, and so is its work on the update), or the lease ran out. The parameters are the lease in
    seconds and the session-name prefixes (shared.db.PROCESS_SESSIONS)."""
    return f"""(updates_inbox.claimed_at < now() - make_interval(secs => ${lease_param})
         OR NOT EXISTS (
             SELECT 1 FROM pg_stat_activity a
             WHERE a.datname = current_database() AND a.application_name IN (
                 SELECT left(p || updates_inbox.claimed_by, 63) FROM unnest(${sessions_param}::text[]) p)))"""


class Inbox:
    def __init__(self, pool: asyncpg.Pool, instance: str) -> None:
        self._pool = pool
        self._instance = instance

    async def accept(self, tenant_id: int, update_id: int, chat_id: int | None, payload: dict[str, Any]) -> bool:
        """True when this process now owns the update; False for a duplicate someone handled or handles."""
        row = await self._pool.fetchval(
            """INSERT INTO updates_inbox (tenant_id, update_id, chat_id, payload, claimed_by)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (tenant_id, update_id) DO UPDATE
                   SET claimed_by = EXCLUDED.claimed_by, claimed_at = now(),
                       attempts = updates_inbox.attempts + 1
                   WHERE updates_inbox.status = 'processing' AND updates_inbox.attempts < $7
                     AND """
            + _claim_open(6, 8)
            + """
               RETURNING 1""",
            tenant_id,
            update_id,
            chat_id,
            payload,
            self._instance,
            RECLAIM_AFTER_SECONDS,
            MAX_ATTEMPTS,
            list(PROCESS_SESSIONS),
        )
        return row is not None

    async def finish(self, tenant_id: int, update_id: int, *, ok: bool) -> None:
        await self._pool.execute(
            "UPDATE updates_inbox SET status = $3, done_at = now() WHERE tenant_id = $1 AND update_id = $2",
            tenant_id,
            update_id,
            "done" if ok else "failed",
        )

    async def reclaim_stale(self, tenant_id: int, limit: int = 50) -> list[Pending]:
        """Updates accepted by a process that died before finishing them, oldest first."""
        rows = await self._pool.fetch(
            """UPDATE updates_inbox SET claimed_by = $2, claimed_at = now(), attempts = attempts + 1
               WHERE (tenant_id, update_id) IN (
                   SELECT tenant_id, update_id FROM updates_inbox
                   WHERE tenant_id = $1 AND status = 'processing' AND attempts < $4
                     AND """
            + _claim_open(3, 6)
            + """
                   ORDER BY update_id LIMIT $5 FOR UPDATE SKIP LOCKED)
               RETURNING update_id, payload""",
            tenant_id,
            self._instance,
            RECLAIM_AFTER_SECONDS,
            MAX_ATTEMPTS,
            limit,
            list(PROCESS_SESSIONS),
        )
        await self._pool.execute(
            "UPDATE updates_inbox SET status = 'failed', done_at = now() "
            "WHERE tenant_id = $1 AND status = 'processing' AND attempts >= $2 "
            "AND claimed_at < now() - make_interval(secs => $3)",
            tenant_id,
            MAX_ATTEMPTS,
            RECLAIM_AFTER_SECONDS,
        )
        return sorted((Pending(r["update_id"], r["payload"]) for r in rows), key=lambda p: p.update_id)

    async def prune(self, older_than_days: int = 7) -> int:
        status = await self._pool.execute(
            "DELETE FROM updates_inbox WHERE received_at < now() - make_interval(days => $1) AND status <> 'processing'",
            older_than_days,
        )
        return int(status.split()[-1])
