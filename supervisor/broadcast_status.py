"""`/status/broadcasts` (HTML) and `/status/broadcasts.json`: every tenant's broadcasts for the operator.

The same access rules as `/status` (they are asked of `OpsEndpoints`, which owns them): the operator's
token as a bearer or the status page's session cookie; throttled, disabled and denied alike. Running and
paused broadcasts come first, then the newest; each with its counts by outcome.
"""

from __future__ import annotations

import html
import time
from dataclasses import asdict, dataclass

import asyncpg
from aiohttp import web

from supervisor.http import json_response
from supervisor.ops import OpsEndpoints
from supervisor.ops_html import page as _page
from supervisor.status_access import refused as status_refused
from tenant_runtime.broadcasts import store

__all__ = ["BroadcastRow", "BroadcastStatusPage"]

LIMIT = 50


@dataclass(frozen=True)
class BroadcastRow:
    tenant: str
    id: int
    status: str
    audience: str
    kind: str
    total: int
    sent: int
    failed: int
    blocked: int
    unknown: int
    left: int
    created_at: float
    finished_at: float | None
    messages_per_second: float


class BroadcastStatusPage:
    def __init__(self, ops: OpsEndpoints, pool: asyncpg.Pool) -> None:
        self._ops = ops
        self._pool = pool

    async def rows(self) -> list[BroadcastRow]:
        return [
            BroadcastRow(
                tenant=slug,
                id=b.id,
                status=b.status,
                audience=b.audience,
                kind=b.content.kind,
                total=p.total,
                sent=p.sent,
                failed=p.failed,
                blocked=p.blocked,
                unknown=p.unknown,
                left=p.pending,
                created_at=b.created_at.timestamp(),
                finished_at=b.finished_at.timestamp() if b.finished_at else None,
                messages_per_second=round(p.rate, 2),
            )
            for slug, b, p in await store.recent(self._pool, LIMIT)
        ]

    async def json(self, request: web.Request) -> web.StreamResponse:
        refused = status_refused(self._ops, request, page=False)
        if refused is not None:
            return refused
        return json_response({"broadcasts": [asdict(r) for r in await self.rows()]})

    async def page(self, request: web.Request) -> web.StreamResponse:
        refused = status_refused(self._ops, request, page=True)
        if refused is not None:
            return refused
        rows = await self.rows()
        headers = (
            "Tenant",
            "#",
            "Status",
            "Audience",
            "Sent",
            "Failed",
            "Blocked",
            "Unknown",
            "Left",
            "Total",
            "Msg/s",
        )
        body = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    r.tenant,
                    r.id,
                    r.status,
                    r.audience,
                    r.sent,
                    r.failed,
                    r.blocked,
                    r.unknown,
                    r.left,
                    r.total,
                    r.messages_per_second,
                )
            )
            + "</tr>"
            for r in rows
        )
        head = "".join(f"<th>{h}</th>" for h in headers)
        table = (
            f'<table class="list" id="broadcasts"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            if rows
            else '<p class="muted" id="broadcasts">No broadcasts yet.</p>'
        )
        generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        return _page(
            "Broadcasts",
            '<p><a href="/status">&larr; status</a></p><h1>Broadcasts</h1>'
            f'<p class="muted">every tenant · {generated} · <a href="/status/broadcasts.json">JSON</a></p>{table}',
        )
