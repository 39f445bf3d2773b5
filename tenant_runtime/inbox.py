"""Durable acceptance of Telegram updates: each update id is handled once per tenant.

A row is written before the update is handled; Telegram's redelivery, or the same update reaching
the other replica, finds it. A claim is taken over when its process has no Postgres session left
(it was killed: its sockets closed at once) or, whatever happened, after a lease. A process that is
shutting down keeps its pool sessions while it drains, so its claims are not taken from under it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.db import PROCESS_SESSIONS

RECLAIM_AFTER_SECONDS = 60
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Pending:
    tenant_id: int
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


# The claim: a new row, or taking over an open claim (see `_claim_open`). Parameters: $1 tenant, $2 update,
# $3 chat, $4 payload, $5 this process, $6 the lease, $7 MAX_ATTEMPTS, $8 PROCESS_SESSIONS. Run alone by
# `Inbox.accept`, and as the first part of `tenant_runtime.arrival`'s statement.
CLAIM_SQL = (
    """INSERT INTO updates_inbox (tenant_id, update_id, chat_id, payload, claimed_by)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (tenant_id, update_id) DO UPDATE
           SET claimed_by = EXCLUDED.claimed_by, claimed_at = now(), attempts = updates_inbox.attempts + 1
           WHERE updates_inbox.status = 'processing' AND updates_inbox.attempts < $7 AND """
    + _claim_open(6, 8)
    + """
       RETURNING 1"""
)


def claim_args(
    tenant_id: int, update_id: int, chat_id: int | None, payload: dict[str, Any], instance: str
) -> tuple[object, ...]:
    return (
        tenant_id,
        update_id,
        chat_id,
        payload,
        instance,
        RECLAIM_AFTER_SECONDS,
        MAX_ATTEMPTS,
        list(PROCESS_SESSIONS),
    )


class Inbox:
    def __init__(self, pool: asyncpg.Pool, instance: str) -> None:
        self._pool = pool
        self._instance = instance

    async def accept(self, tenant_id: int, update_id: int, chat_id: int | None, payload: dict[str, Any]) -> bool:
        """True when this process now owns the update; False for a duplicate someone handled or handles."""
        row = await self._pool.fetchval(CLAIM_SQL, *claim_args(tenant_id, update_id, chat_id, payload, self._instance))
        return row is not None

    async def finish(self, tenant_id: int, update_id: int, *, ok: bool) -> bool:
        """Mark the update handled; False when the claim was no longer ours (someone took it over)."""
        found = await self._pool.fetchval(
            "UPDATE updates_inbox SET status = $3, done_at = now() "
            "WHERE tenant_id = $1 AND update_id = $2 AND claimed_by = $4 AND status = 'processing' RETURNING 1",
            tenant_id,
            update_id,
            "done" if ok else "failed",
            self._instance,
        )
        return found is not None

    async def release(self, tenant_id: int, update_id: int) -> None:
        """Give up this process's claim now (it cannot answer for the bot): the next redelivery or the
        next reclaimer takes the update at once instead of after the lease. The try is not counted: the
        update did not fail, Telegram was out of reach; MAX_ATTEMPTS is for updates that fail their
        handler (chaos seed 707: a reply handed back five times in a Telegram outage was marked failed
        and never sent)."""
        await self._pool.execute(
            "UPDATE updates_inbox SET claimed_at = now() - make_interval(secs => $4), "
            "attempts = greatest(attempts - 1, 0) "
            "WHERE tenant_id = $1 AND update_id = $2 AND claimed_by = $3 AND status = 'processing'",
            tenant_id,
            update_id,
            self._instance,
            RECLAIM_AFTER_SECONDS + 1,
        )

    async def renew(self, open_updates: Mapping[int, Collection[int]]) -> int:
        """Renew the leases of updates this process is still handling (tenant id -> update ids), so a
        slow or queued update is never taken over by a live process; one statement for all of them."""
        tenants = [tid for tid, ids in open_updates.items() for _ in ids]
        updates = [uid for ids in open_updates.values() for uid in ids]
        if not updates:
            return 0
        status = await self._pool.execute(
            """UPDATE updates_inbox u SET claimed_at = now()
               FROM unnest($1::bigint[], $2::bigint[]) AS o (tenant_id, update_id)
               WHERE u.tenant_id = o.tenant_id AND u.update_id = o.update_id
                 AND u.claimed_by = $3 AND u.status = 'processing'""",
            tenants,
            updates,
            self._instance,
        )
        return int(status.split()[-1])

    async def reclaim_stale(
        self, tenant_ids: Collection[int], *, exclude: Collection[tuple[int, int]] = (), limit: int = 200
    ) -> list[Pending]:
        """Updates of these tenants accepted by a process that died before finishing them, oldest first,
        now claimed by this process; never one of `exclude` ((tenant, update) pairs this process still has
        in hand). One statement for all tenants, whatever their number; updates tried MAX_ATTEMPTS times
        are marked failed instead."""
        if not tenant_ids:
            return []
        rows = await self._pool.fetch(
            """UPDATE updates_inbox SET claimed_by = $2, claimed_at = now(), attempts = attempts + 1
               WHERE (tenant_id, update_id) IN (
                   SELECT tenant_id, update_id FROM updates_inbox
                   WHERE tenant_id = ANY($1::bigint[]) AND status = 'processing' AND attempts < $4
                     AND (tenant_id, update_id) NOT IN (SELECT * FROM unnest($7::bigint[], $8::bigint[]))
                     AND """
            + _claim_open(3, 6)
            + """
                   ORDER BY update_id LIMIT $5 FOR UPDATE SKIP LOCKED)
               RETURNING tenant_id, update_id, payload""",
            list(tenant_ids),
            self._instance,
            RECLAIM_AFTER_SECONDS,
            MAX_ATTEMPTS,
            limit,
            list(PROCESS_SESSIONS),
            [tid for tid, _ in exclude],
            [uid for _, uid in exclude],
        )
        await self._pool.execute(
            "UPDATE updates_inbox SET status = 'failed', done_at = now() "
            "WHERE tenant_id = ANY($1::bigint[]) AND status = 'processing' AND attempts >= $2 "
            "AND claimed_at < now() - make_interval(secs => $3)",
            list(tenant_ids),
            MAX_ATTEMPTS,
            RECLAIM_AFTER_SECONDS,
        )
        return sorted(
            (Pending(r["tenant_id"], r["update_id"], r["payload"]) for r in rows),
            key=lambda p: (p.tenant_id, p.update_id),
        )

    async def prune(self, older_than_days: int = 7) -> int:
        status = await self._pool.execute(
            "DELETE FROM updates_inbox WHERE received_at < now() - make_interval(days => $1) AND status <> 'processing'",
            older_than_days,
        )
        return int(status.split()[-1])
