"""`/status/stats` (HTML) and `/status/stats.json`: every shop's numbers for a period, for the operator.

`?period=today|7d|30d` (30d when absent); anything else is a 400 naming the choices. The same access
rules as `/status`. Each shop's period starts at midnight in its own time zone; the figures are those an
admin sees in /admin → Statistics (tenant_runtime.analytics).
"""

from __future__ import annotations

import html
import time
from dataclasses import asdict

import asyncpg
from aiohttp import web

from supervisor.http import error_response, json_response
from supervisor.ops import OpsEndpoints
from supervisor.ops_html import page as _page
from supervisor.status_access import refused
from tenant_runtime.analytics import Period, ShopSummary, all_shops

__all__ = ["StatsPage"]

_COLUMNS = ("Shop", "Top-ups", "Spent", "New users", "Paying", "Generations", "Succeeded", "Failed", "KIE credits")


def _period(request: web.Request) -> Period | None:
    value = request.query.get("period", Period.MONTH.value)
    return Period(value) if value in set(Period) else None


def _json_row(row: ShopSummary) -> dict[str, object]:
    return {**asdict(row), "kie_credits": str(row.kie_credits)}


class StatsPage:
    def __init__(self, ops: OpsEndpoints, pool: asyncpg.Pool) -> None:
        self._ops = ops
        self._pool = pool

    async def json(self, request: web.Request) -> web.StreamResponse:
        denied = refused(self._ops, request, page=False)
        if denied is not None:
            return denied
        period = _period(request)
        if period is None:
            return error_response(400, "period must be one of: " + ", ".join(p.value for p in Period))
        rows = await all_shops(self._pool, period)
        return json_response({"period": period.value, "shops": [_json_row(r) for r in rows]})

    async def page(self, request: web.Request) -> web.StreamResponse:
        denied = refused(self._ops, request, page=True)
        if denied is not None:
            return denied
        period = _period(request)
        if period is None:
            choices = ", ".join(p.value for p in Period)
            return _page("Statistics", f"<p>period must be one of: {html.escape(choices)}</p>", status=400)
        rows = await all_shops(self._pool, period)
        cells = (
            (
                r.slug,
                r.revenue / 100,
                r.spend / 100,
                r.new_users,
                r.paying_users,
                r.generations,
                r.succeeded,
                r.failed,
                r.kie_credits.normalize(),
            )
            for r in rows
        )
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in c) + "</tr>" for c in cells)
        head = "".join(f"<th>{h}</th>" for h in _COLUMNS)
        links = " · ".join(
            f'<a href="/status/stats?period={p.value}">{p.value}</a>' if p is not period else f"<b>{p.value}</b>"
            for p in Period
        )
        generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        table = (
            f'<table class="list" id="stats"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            if rows
            else '<p class="muted" id="stats">No shops yet.</p>'
        )
        return _page(
            "Statistics",
            '<p><a href="/status">&larr; status</a></p><h1>Statistics</h1>'
            f'<p class="muted">{links} · money in currency units · {generated} · '
            f'<a href="/status/stats.json?period={period.value}">JSON</a></p>{table}',
        )
