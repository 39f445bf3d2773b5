"""One timeline of who did what, for `python -m supervisor audit`: operators' actions
(`operator_audit`), tenant admins' actions (`audit_log`: bans, promo codes, broadcasts) and tenant
admins' money actions, which the append-only ledger already records with the admin's id and reason
(top-ups, deducts, Stars refunds): read from there rather than written twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.redact import REDACTOR

__all__ = ["MONEY_ACTIONS", "AuditRecord", "read_audit", "slug_known"]

# Ledger kinds an admin's hand moves, and how the audit names them.
MONEY_ACTIONS = {
    "admin_credit": "balance_credit",
    "admin_debit": "balance_debit",
    "refund": "stars_refund",
    "refund_reverted": "stars_refund_reverted",
}


@dataclass(frozen=True)
class AuditRecord:
    at: datetime
    tenant: str | None
    actor: str
    action: str
    subject: str | None
    detail: str | None
    before: dict[str, object] | None
    after: dict[str, object] | None

    def as_dict(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat(),
            "tenant": self.tenant,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "detail": self.detail,
            "before": self.before,
            "after": self.after,
        }


_AUDIT_SQL = """
SELECT * FROM (
    SELECT o.created_at AS at, o.tenant_slug AS tenant, o.actor, o.action, NULL::text AS subject,
           NULL::text AS detail, o.before, o.after
    FROM operator_audit o
    WHERE ($1::text IS NULL OR o.tenant_slug = $1) AND ($2::timestamptz IS NULL OR o.created_at >= $2)
    UNION ALL
    SELECT a.created_at, t.slug, a.actor, a.action, a.subject, a.detail, NULL::jsonb, NULL::jsonb
    FROM audit_log a JOIN tenants t ON t.id = a.tenant_id
    WHERE ($1::text IS NULL OR t.slug = $1) AND ($2::timestamptz IS NULL OR a.created_at >= $2)
    UNION ALL
    SELECT e.created_at, t.slug, e.actor, k.action, 'user:' || e.user_id, e.reason,
           jsonb_build_object('available', e.available_after - e.available_delta),
           jsonb_build_object('available', e.available_after)
    FROM ledger_entries e
    JOIN tenants t ON t.id = e.tenant_id
    JOIN unnest($4::text[], $5::text[]) AS k (kind, action) ON k.kind = e.kind
    WHERE e.kind IN ('admin_credit', 'admin_debit', 'refund', 'refund_reverted')
      AND (e.actor LIKE 'admin:%' OR e.actor LIKE 'operator:%')
      AND ($1::text IS NULL OR t.slug = $1) AND ($2::timestamptz IS NULL OR e.created_at >= $2)
) x
ORDER BY at DESC
LIMIT $3
"""


async def read_audit(pool: asyncpg.Pool, slug: str | None, since: datetime | None, limit: int) -> list[AuditRecord]:
    """The newest `limit` records (of `slug`, since `since`), oldest first."""
    rows = await pool.fetch(_AUDIT_SQL, slug, since, limit, list(MONEY_ACTIONS), list(MONEY_ACTIONS.values()))
    return [
        AuditRecord(
            at=r["at"],
            tenant=r["tenant"],
            actor=r["actor"],
            action=r["action"],
            subject=r["subject"],
            detail=REDACTOR.redact(r["detail"]) if r["detail"] else None,
            before=r["before"],
            after=r["after"],
        )
        for r in reversed(rows)
    ]


async def slug_known(pool: asyncpg.Pool, slug: str) -> bool:
    """A current tenant, or one the operator audit remembers (a removed tenant's history stays)."""
    return bool(
        await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM tenants WHERE slug = $1) "
            "OR EXISTS (SELECT 1 FROM operator_audit WHERE tenant_slug = $1)",
            slug,
        )
    )
