"""Broadcasts in Postgres: created with their recipients in one transaction, claimed one recipient at a
time right before the call to Telegram, finished once.

Exactly once per recipient, as far as Telegram allows: a recipient is claimed ('sending', with the
claiming process's identity) in its own committed statement, sent, then recorded. Claims use
`FOR UPDATE SKIP LOCKED`, so two senders (a lock holder and the one it replaced, for a moment) never take
the same recipient. A claim whose process is gone (no Postgres session left, or the lease ran out) cannot
tell whether Telegram got the message: it becomes 'unknown' and is never sent again.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from shared.db import PROCESS_SESSIONS
from tenant_runtime.broadcasts.model import (
    OPEN,
    Audience,
    Broadcast,
    BroadcastStatus,
    Content,
    Progress,
    RecipientStatus,
)
from tenant_runtime.config import Language
from tenant_runtime.moderation.audit import AuditAction, record

__all__ = [
    "CLAIM_LEASE_S",
    "Claim",
    "Created",
    "audience_sizes",
    "claim",
    "create",
    "finish_if_done",
    "get",
    "open_broadcasts",
    "open_for",
    "progress",
    "recent",
    "record_result",
    "resolve_orphans",
    "set_progress_message",
    "set_status",
]

CLAIM_LEASE_S = 120  # a send takes seconds; a claim older than this is its dead (or frozen) sender's

# Who a broadcast can reach: known users, not banned, who have not blocked the bot.
_REACHABLE = "u.tenant_id = $1 AND u.banned_at IS NULL AND u.blocked_at IS NULL"
_AUDIENCE: dict[Audience, str] = {
    Audience.ALL: "true",
    Audience.PAID: "EXISTS (SELECT 1 FROM ledger_entries e WHERE e.tenant_id = u.tenant_id "
    "AND e.user_id = u.user_id AND e.kind = 'topup')",
    Audience.ACTIVE: "u.last_seen_at > now() - interval '30 days'",
}


async def audience_sizes(pool: asyncpg.Pool, tenant_id: int) -> dict[Audience, int]:
    row = await pool.fetchrow(
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE {sql}) AS {audience}" for audience, sql in _AUDIENCE.items())
        + f" FROM bot_users u WHERE {_REACHABLE}",
        tenant_id,
    )
    return {audience: int(row[audience]) for audience in Audience}


@dataclass(frozen=True)
class Created:
    broadcast: Broadcast | None  # None: the audience is empty (nothing written)
    new: bool  # False: this draft was sent before (a double tap), or another broadcast is open
    busy: bool = False  # another broadcast of the tenant is open: `broadcast` is that one


async def create(
    pool: asyncpg.Pool,
    tenant_id: int,
    *,
    draft: str,
    admin_id: int,
    admin_chat_id: int,
    language: Language,
    audience: Audience,
    content: Content,
) -> Created:
    """The broadcast and its recipients, in one transaction; a second tap on the same draft finds it.
    An empty audience, or another open broadcast, writes nothing."""
    try:
        return await _insert(pool, tenant_id, draft, admin_id, admin_chat_id, language, audience, content)
    except _Empty:
        return Created(None, new=False)


async def _insert(
    pool: asyncpg.Pool,
    tenant_id: int,
    draft: str,
    admin_id: int,
    admin_chat_id: int,
    language: Language,
    audience: Audience,
    content: Content,
) -> Created:
    async with pool.acquire() as conn, conn.transaction():
        existing = await conn.fetchrow("SELECT * FROM broadcasts WHERE tenant_id = $1 AND draft = $2", tenant_id, draft)
        if existing is not None:
            return Created(Broadcast.from_row(existing), new=False)
        # Serialise creations of one tenant: one open broadcast at a time (the unique index agrees).
        await conn.execute("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)
        busy = await conn.fetchrow(
            "SELECT * FROM broadcasts WHERE tenant_id = $1 AND status = ANY($2::text[])", tenant_id, list(OPEN)
        )
        if busy is not None:
            return Created(Broadcast.from_row(busy), new=False, busy=True)
        row = await conn.fetchrow(
            """INSERT INTO broadcasts (tenant_id, draft, created_by, audience, kind, body, file_id, button_text,
                   button_url, total, language, admin_chat_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11) RETURNING id""",
            tenant_id,
            draft,
            admin_id,
            audience,
            content.kind,
            content.body,
            content.file_id,
            content.button_text,
            content.button_url,
            language,
            admin_chat_id,
        )
        total = await conn.fetchval(
            f"""WITH added AS (
                    INSERT INTO broadcast_recipients (broadcast_id, user_id)
                    SELECT $2, u.user_id FROM bot_users u WHERE {_REACHABLE} AND {_AUDIENCE[audience]}
                    RETURNING 1)
                SELECT count(*) FROM added""",
            tenant_id,
            row["id"],
        )
        if not total:
            raise _Empty
        created = await conn.fetchrow("UPDATE broadcasts SET total = $2 WHERE id = $1 RETURNING *", row["id"], total)
        await record(conn, tenant_id, f"admin:{admin_id}", AuditAction.BROADCAST_START, str(row["id"]), audience)
    return Created(Broadcast.from_row(created), new=True)


class _Empty(Exception):
    """Rolls the transaction back: an empty audience writes nothing."""


async def get(pool: asyncpg.Pool, tenant_id: int, broadcast_id: int) -> Broadcast | None:
    row = await pool.fetchrow("SELECT * FROM broadcasts WHERE id = $1 AND tenant_id = $2", broadcast_id, tenant_id)
    return None if row is None else Broadcast.from_row(row)


async def open_broadcasts(pool: asyncpg.Pool) -> list[Broadcast]:
    """Every tenant's running and paused broadcasts (one per tenant at most; read by its partial index)."""
    rows = await pool.fetch("SELECT * FROM broadcasts WHERE status = ANY($1::text[])", list(OPEN))
    return [Broadcast.from_row(r) for r in rows]


async def open_for(pool: asyncpg.Pool, tenant_ids: list[int]) -> list[Broadcast]:
    """The running and paused broadcasts of these tenants (one query for all of them)."""
    rows = await pool.fetch(
        "SELECT * FROM broadcasts WHERE tenant_id = ANY($1::bigint[]) AND status = ANY($2::text[])",
        tenant_ids,
        list(OPEN),
    )
    return [Broadcast.from_row(r) for r in rows]


# What an admin's button may change, and from which states.
_TRANSITIONS: dict[BroadcastStatus, tuple[tuple[BroadcastStatus, ...], AuditAction]] = {
    BroadcastStatus.PAUSED: ((BroadcastStatus.RUNNING,), AuditAction.BROADCAST_PAUSE),
    BroadcastStatus.RUNNING: ((BroadcastStatus.PAUSED,), AuditAction.BROADCAST_RESUME),
    BroadcastStatus.CANCELLED: (OPEN, AuditAction.BROADCAST_CANCEL),
}


async def set_status(
    pool: asyncpg.Pool, tenant_id: int, broadcast_id: int, to: BroadcastStatus, admin_id: int
) -> Broadcast | None:
    """Pause, resume or cancel; None when the broadcast is not in a state that allows it."""
    allowed, action = _TRANSITIONS[to]
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """UPDATE broadcasts SET status = $3,
                   finished_at = CASE WHEN $3 = 'cancelled' THEN now() ELSE finished_at END
               WHERE id = $1 AND tenant_id = $2 AND status = ANY($4::text[]) RETURNING *""",
            broadcast_id,
            tenant_id,
            to,
            list(allowed),
        )
        if row is None:
            return None
        await record(conn, tenant_id, f"admin:{admin_id}", action, str(broadcast_id))
    return Broadcast.from_row(row)


async def set_progress_message(pool: asyncpg.Pool, broadcast_id: int, message_id: int) -> None:
    await pool.execute("UPDATE broadcasts SET progress_message_id = $2 WHERE id = $1", broadcast_id, message_id)


async def progress(pool: asyncpg.Pool | asyncpg.Connection, broadcast_id: int) -> Progress:
    row = await pool.fetchrow(
        """SELECT b.total,
                  count(*) FILTER (WHERE r.status = 'sent') AS sent,
                  count(*) FILTER (WHERE r.status = 'failed') AS failed,
                  count(*) FILTER (WHERE r.status = 'blocked') AS blocked,
                  count(*) FILTER (WHERE r.status = 'unknown') AS unknown,
                  count(*) FILTER (WHERE r.status IN ('pending', 'sending')) AS pending,
                  extract(epoch FROM coalesce(b.finished_at, now()) - b.created_at)::float8 AS elapsed_s
           FROM broadcasts b JOIN broadcast_recipients r ON r.broadcast_id = b.id
           WHERE b.id = $1 GROUP BY b.id""",
        broadcast_id,
    )
    return Progress(
        row["total"], row["sent"], row["failed"], row["blocked"], row["unknown"], row["pending"], row["elapsed_s"]
    )


@dataclass(frozen=True)
class Claim:
    user_id: int
    attempts: int  # including this one


async def claim(pool: asyncpg.Pool, broadcast_id: int, instance: str) -> Claim | None:
    """The next recipient, claimed for this process; None when none is left or the broadcast is not
    running (a pause or cancel takes effect before the next message)."""
    row = await pool.fetchrow(
        """UPDATE broadcast_recipients r SET status = 'sending', claimed_by = $2, claimed_at = now(),
               attempts = r.attempts + 1
           WHERE (r.broadcast_id, r.user_id) = (
               SELECT p.broadcast_id, p.user_id FROM broadcast_recipients p
               WHERE p.broadcast_id = $1 AND p.status = 'pending'
                 AND EXISTS (SELECT 1 FROM broadcasts b WHERE b.id = $1 AND b.status = 'running')
               ORDER BY p.user_id LIMIT 1 FOR UPDATE SKIP LOCKED)
           RETURNING r.user_id, r.attempts""",
        broadcast_id,
        instance,
    )
    return None if row is None else Claim(row["user_id"], row["attempts"])


async def record_result(
    pool: asyncpg.Pool,
    broadcast_id: int,
    tenant_id: int,
    user_id: int,
    instance: str,
    status: RecipientStatus,
    error: str | None = None,
) -> bool:
    """What Telegram said about one claimed recipient; PENDING puts it back for a later try. A blocked
    user is marked on their record too, so later broadcasts leave them out."""
    async with pool.acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            """UPDATE broadcast_recipients SET status = $4, error = $5,
                   done_at = CASE WHEN $4 = 'pending' THEN NULL ELSE now() END
               WHERE broadcast_id = $1 AND user_id = $2 AND status = 'sending' AND claimed_by = $3
               RETURNING 1""",
            broadcast_id,
            user_id,
            instance,
            status,
            error[:300] if error else None,
        )
        if done and status is RecipientStatus.BLOCKED:
            await conn.execute(
                "UPDATE bot_users SET blocked_at = now() WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id
            )
    return bool(done)


async def resolve_orphans(pool: asyncpg.Pool, broadcast_id: int, instance: str) -> int:
    """Claims of processes that are gone (or stuck past the lease) become 'unknown': never sent again."""
    status = await pool.execute(
        """UPDATE broadcast_recipients r SET status = 'unknown', done_at = now(),
               error = 'its sender stopped during the call to Telegram'
           WHERE r.broadcast_id = $1 AND r.status = 'sending' AND r.claimed_by <> $2
             AND (r.claimed_at < now() - make_interval(secs => $3)
                  OR NOT EXISTS (
                      SELECT 1 FROM pg_stat_activity a
                      WHERE a.datname = current_database() AND a.application_name IN (
                          SELECT left(p || r.claimed_by, 63) FROM unnest($4::text[]) p)))""",
        broadcast_id,
        instance,
        CLAIM_LEASE_S,
        list(PROCESS_SESSIONS),
    )
    return int(status.split()[-1])


async def finish_if_done(pool: asyncpg.Pool, broadcast_id: int) -> Broadcast | None:
    """Mark a running broadcast done once no recipient is pending or being sent; once, whoever asks."""
    row = await pool.fetchrow(
        """UPDATE broadcasts b SET status = 'done', finished_at = now()
           WHERE b.id = $1 AND b.status = 'running' AND NOT EXISTS (
               SELECT 1 FROM broadcast_recipients r WHERE r.broadcast_id = b.id AND r.status IN ('pending', 'sending'))
           RETURNING *""",
        broadcast_id,
    )
    return None if row is None else Broadcast.from_row(row)


async def recent(pool: asyncpg.Pool, limit: int = 50) -> list[tuple[str, Broadcast, Progress]]:
    """The newest broadcasts of every tenant, with their progress (for the operator)."""
    rows = await pool.fetch(
        """SELECT t.slug, b.* FROM broadcasts b JOIN tenants t ON t.id = b.tenant_id
           ORDER BY (b.status IN ('running', 'paused')) DESC, b.id DESC LIMIT $1""",
        limit,
    )
    return [(r["slug"], Broadcast.from_row(r), await progress(pool, r["id"])) for r in rows]
