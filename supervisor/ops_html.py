"""The HTML of the operator pages: one self-contained document per page (inline CSS, no scripts),
readable on a phone. Every value is escaped here; the values themselves are already free of secrets
(supervisor.ops_snapshot). Other pages under /status/ (statistics, broadcasts) share `page`."""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import quote

from aiohttp import web

from supervisor.ops_snapshot import Snapshot, TenantStatus

__all__ = ["SECURITY_HEADERS", "detail", "login_form", "not_found", "overview", "page"]

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # No scripts at all; inline CSS only; the form may only post back here.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}

_STYLE = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:12px;color:#1d2430;background:#f5f6f8}
main{max-width:1100px;margin:0 auto}
h1{font-size:1.25rem;margin:4px 0}h2{font-size:1.05rem;margin:22px 0 8px}
a{color:#0b5cad}.muted{color:#5f6b7a;font-size:.85rem}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #dfe3e8;border-radius:8px}
th,td{padding:8px 10px;border-bottom:1px solid #eceff2;text-align:left;vertical-align:top}
th{font-size:.75rem;text-transform:uppercase;letter-spacing:.03em;color:#5f6b7a;background:#fafbfc}
tbody tr{position:relative}tbody tr:hover{background:#f3f7fc}
a.row::after{content:"";position:absolute;inset:0}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:.8rem;font-weight:600;color:#fff;background:#6e7781}
.s-active{background:#1a7f37}.s-standby{background:#0969da}.s-starting{background:#9a6700}
.s-backoff{background:#bc4c00}.s-quarantined,.s-token_invalid{background:#cf222e}
.err{color:#a40e26;font-family:ui-monospace,Menlo,monospace;font-size:.8rem;overflow-wrap:anywhere}
.warn{background:#fff8c5;border:1px solid #d4a72c;padding:8px 10px;border-radius:6px}
table.kv th{width:11em;text-transform:none;font-size:.85rem;letter-spacing:0}
form{display:flex;flex-wrap:wrap;gap:8px;max-width:420px}
input{flex:1 1 220px;font:inherit;padding:8px;border:1px solid #bfc6ce;border-radius:6px}
button{font:inherit;padding:8px 16px;border:0;border-radius:6px;background:#0969da;color:#fff}
@media (max-width:700px){
 table.list thead{display:none}
 table.list,table.list tbody,table.list tr,table.list td{display:block;width:100%}
 table.list tr{border-bottom:1px solid #dfe3e8;padding:6px 0}
 table.list td{border:0;padding:3px 10px}
 table.list td::before{content:attr(data-label);display:inline-block;min-width:10em;padding-right:.5em;color:#5f6b7a;font-size:.8rem}
}
"""

_BACK = '<p><a href="/status">&larr; all tenants</a></p>'


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: str, *, status: int = 200) -> web.Response:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{_e(title)} · supervisor status</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    return web.Response(text=document, content_type="text/html", status=status, headers=SECURITY_HEADERS)


def login_form(error: str | None = None) -> str:
    problem = f'<p class="err" role="alert">{_e(error)}</p>' if error else ""
    return (
        "<h1>Supervisor status</h1><p class=muted>Enter the operator token (OPERATOR_TOKEN).</p>"
        f'{problem}<form method="post" action="/status">'
        '<input type="password" name="token" aria-label="Operator token" autocomplete="current-password" '
        'required autofocus><button type="submit">Sign in</button></form>'
    )


def _when(ts: float | None, now: float) -> str:
    """A relative time a phone can show in one glance, with the exact UTC time on hover."""
    if ts is None:
        return '<span class="muted">never</span>'
    delta = now - ts
    seconds = abs(delta)
    if seconds < 90:
        text = f"{seconds:.0f} s"
    elif seconds < 5400:
        text = f"{seconds / 60:.0f} min"
    elif seconds < 172800:
        text = f"{seconds / 3600:.0f} h"
    else:
        text = f"{seconds / 86400:.0f} d"
    iso = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    label = f"{text} ago" if delta >= 0 else f"in {text}"
    return f'<time datetime="{_e(iso)}" title="{_e(iso)}">{_e(label)}</time>'


def _badge(state: str) -> str:
    return f'<span class="badge s-{_e(state)}">{_e(state.replace("_", " "))}</span>'


def _generations(counts: dict[str, int]) -> str:
    if not counts:
        return "0"
    detail = ", ".join(f"{_e(k)} {v}" for k, v in counts.items())
    return f'{sum(counts.values())} <span class="muted">({detail})</span>'


def _lock(tenant: TenantStatus) -> str:
    if tenant.lock is None:
        return '<span class="muted">none</span>'
    return _e(tenant.lock.instance)


def _error(text: str | None) -> str:
    return f'<span class="err">{_e(text)}</span>' if text else '<span class="muted">—</span>'


def _cells(pairs: Iterable[tuple[str, str]]) -> str:
    """A row whose cells carry their column name, shown as a label when the table folds on a phone."""
    return "<tr>" + "".join(f'<td data-label="{_e(label)}">{value}</td>' for label, value in pairs) + "</tr>"


def overview(snap: Snapshot, *, open_access: bool) -> str:
    parts = [
        "<h1>Supervisor status</h1>",
        f'<p class="muted">instance {_e(snap.instance)} · version {_e(snap.version)} · '
        f"{len(snap.tenants)} tenants · locks held here: {snap.locks_held} · "
        f'<a href="/status.json">JSON</a> · <a href="/status/stats">statistics</a> · '
        '<a href="/status/broadcasts">broadcasts</a> · <a href="/status">refresh</a></p>',
    ]
    if open_access:
        parts.append('<p class="warn">No OPERATOR_TOKEN: this page is open because ENV=development.</p>')
    if snap.db_error:
        parts.append(f'<p class="warn">Database query failed ({_e(snap.db_error)}): locks and counts missing.</p>')
    parts.append("<h2>Tenants</h2>")
    parts.append(_tenants(snap))
    parts.append("<h2>Instances alive</h2>")
    parts.append(_instances(snap))
    return "".join(parts)


def _tenants(snap: Snapshot) -> str:
    now = snap.generated_at
    headers = ("Tenant", "State", "Lock holder", "Last update", "Restarts", "Generations today", "Last error")
    rows = [
        _cells(
            zip(
                headers,
                (
                    f'<a class="row" href="/status?tenant={quote(t.slug)}">{_e(t.slug)}</a>'
                    f'<br><span class="muted">{_e(t.display_name)}</span>',
                    _badge(t.state),
                    _lock(t),
                    _when(t.last_update_at, now),
                    str(t.restarts),
                    _generations(t.generations_today),
                    _error(t.last_error),
                ),
                strict=True,
            )
        )
        for t in snap.tenants
    ]
    if not rows:
        return '<p class="muted" id="tenants">No tenants on this instance.</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f'<table class="list" id="tenants"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _instances(snap: Snapshot) -> str:
    now = snap.generated_at
    headers = ("Name", "Host", "PID", "Version", "Started", "Heartbeat")
    rows = [
        _cells(
            zip(
                headers,
                (
                    _e(i.name),
                    _e(i.host),
                    _e(i.pid),
                    _e(i.version),
                    _when(i.started_at, now),
                    _when(i.heartbeat_at, now),
                ),
                strict=True,
            )
        )
        for i in snap.instances
    ]
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f'<table class="list" id="instances"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def detail(t: TenantStatus, now: float) -> str:
    lock = t.lock
    fields = [
        ("Slug", _e(t.slug)),
        ("Name", _e(t.display_name)),
        ("Tenant id", _e(t.id)),
        ("State", _badge(t.state)),
        ("Restarts", _e(t.restarts)),
        ("Next attempt", _when(t.next_attempt_at, now) if t.next_attempt_at else '<span class="muted">—</span>'),
        ("Lock holder", _lock(t)),
        ("Lock since", _when(lock.since, now) if lock else '<span class="muted">—</span>'),
        ("Lock heartbeat", _when(lock.heartbeat_at, now) if lock else '<span class="muted">—</span>'),
        ("Held by this instance", "yes" if t.locked_here else "no"),
        ("Last update", _when(t.last_update_at, now)),
        ("Generations today", _generations(t.generations_today)),
        ("Last error", _error(t.last_error)),
    ]
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in fields)
    return (
        f'{_BACK}<h1 id="tenant-detail">{_e(t.slug)}</h1><p class="muted">{_e(t.display_name)}</p>'
        f'<table class="kv" id="tenant"><tbody>{rows}</tbody></table>'
    )


def not_found(slug: str) -> str:
    return f"<p>No tenant {_e(slug)} on this instance.</p>{_BACK}"
