"""The audit log: what a tenant's admins (or the operator) did, with who did it. Append-only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

__all__ = ["AuditAction", "AuditEntry", "recent", "record"]


class AuditAction(StrEnum):
    BAN = "ban"
    UNBAN = "unban"
    PROMO_CREATE = "promo_create"
    PROMO_DISABLE = "promo_disable"
    BROADCAST_START = "broadcast_start"
    BROADCAST_PAUSE = "broadcast_pause"
    BROADCAST_RESUME = "broadcast_resume"
    BROADCAST_CANCEL = "broadcast_cancel"


@dataclass(frozen=True)
class AuditEntry:
    actor: str  # "admin:<id>", "operator:<name>"
    action: AuditAction
    subject: str
    detail: str | None
    created_at: datetime


async def record(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: int,
    actor: str,
    action: AuditAction,
    subject: str,
    detail: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (tenant_id, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
        tenant_id,
        actor,
        action,
        subject,
        detail,
    )


async def recent(pool: asyncpg.Pool, tenant_id: int, subject: str | None = None, limit: int = 20) -> list[AuditEntry]:
    rows = await pool.fetch(
        """SELECT actor, action, subject, detail, created_at FROM audit_log
           WHERE tenant_id = $1 AND ($2::text IS NULL OR subject = $2) ORDER BY id DESC LIMIT $3""",
        tenant_id,
        subject,
        limit,
    )
    return [AuditEntry(r["actor"], AuditAction(r["action"]), r["subject"], r["detail"], r["created_at"]) for r in rows]
