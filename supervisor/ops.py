"""Operator endpoints: `/metrics` (Prometheus), `/status` (HTML for a phone) and `/status.json`.

Access rules, strict by default:

* `/metrics` answers anyone when METRICS_TOKEN is unset (series carry tenant slugs, never secrets);
  when it is set, only `Authorization: Bearer <METRICS_TOKEN>`, else 401.
* `/status` and `/status.json` need OPERATOR_TOKEN, given either as `Authorization: Bearer <token>`
  or as the session cookie the login form sets. Without OPERATOR_TOKEN they answer 404 in production
  (nobody can be let in, so the pages do not exist) and are open only when ENV=development.
* The cookie never holds the token: it is `<expiry>.<HMAC-SHA256(key=token, "status-session:<expiry>")>`,
  HttpOnly, SameSite=Strict, Secure in production, valid for 12 hours. It is stateless, so it works on
  every instance (old and new overlap during a deploy), and changing OPERATOR_TOKEN revokes it.

Every value shown is already free of secrets (no token, key or webhook secret is ever read here) and
errors pass through the redactor once more; the HTML escapes every value.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import Enum
from urllib.parse import quote

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import metrics
from shared.logs import get_logger
from shared.redact import REDACTOR
from shared.settings import Settings
from supervisor import __version__
from supervisor.http import json_response
from supervisor.lifecycle import Lifecycle, Slot

log = get_logger(__name__)

COOKIE_NAME = "tgsup_status"
SESSION_SECONDS = 12 * 3600
INSTANCE_ALIVE_SECONDS = 60
DB_TIMEOUT_SECONDS = 5.0

_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # No scripts at all; inline CSS only; the form may only post back here.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}


class Access(Enum):
    GRANTED = "granted"
    OPEN = "open"  # development without OPERATOR_TOKEN
    DENIED = "denied"
    DISABLED = "disabled"  # production without OPERATOR_TOKEN


@dataclass(frozen=True)
class LockInfo:
    instance: str
    since: float
    heartbeat_at: float


@dataclass(frozen=True)
class TenantStatus:
    id: int
    slug: str
    display_name: str
    state: str
    restarts: int
    last_error: str | None
    next_attempt_at: float | None
    locked_here: bool
    lock: LockInfo | None
    last_update_at: float | None
    generations_today: dict[str, int]


@dataclass(frozen=True)
class InstanceStatus:
    name: str
    host: str
    pid: int
    version: str
    started_at: float
    heartbeat_at: float


@dataclass(frozen=True)
class Snapshot:
    instance: str
    version: str
    generated_at: float
    locks_held: int
    db_error: str | None
    tenants: list[TenantStatus] = field(default_factory=list)
    instances: list[InstanceStatus] = field(default_factory=list)


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class OpsEndpoints:
    def __init__(
        self,
        settings: Settings,
        instance: str,
        lifecycle: Lifecycle,
        pool: asyncpg.Pool,
        locker_held: Callable[[], int],
    ) -> None:
        self.settings = settings
        self.instance = instance
        self.lifecycle = lifecycle
        self.pool = pool
        self.locker_held = locker_held

    # --- /metrics ------------------------------------------------------------------------------------

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        token = self.settings.metrics_token
        if token is not None:
            given = _bearer(request)
            if given is None or not _same(given, token.get_secret_value()):
                return _unauthorized_json()
        # The heartbeat refreshes these every 10 s; a scrape should not see a stale pool.
        metrics.DB_POOL_SIZE.set(self.pool.get_size())
        metrics.DB_POOL_IDLE.set(self.pool.get_idle_size())
        return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # --- access --------------------------------------------------------------------------------------

    def _access(self, request: web.Request) -> Access:
        token = self.settings.operator_token
        if token is None:
            return Access.OPEN if self.settings.env == "development" else Access.DISABLED
        secret = token.get_secret_value()
        given = _bearer(request)
        if given is not None:
            return Access.GRANTED if _same(given, secret) else Access.DENIED
        cookie = request.cookies.get(COOKIE_NAME)
        return Access.GRANTED if cookie is not None and self._valid_session(cookie, secret) else Access.DENIED

    @staticmethod
    def _session(secret: str, expires: int) -> str:
        mac = hmac.new(secret.encode(), f"status-session:{expires}".encode(), hashlib.sha256).hexdigest()
        return f"{expires}.{mac}"

    def _valid_session(self, cookie: str, secret: str) -> bool:
        raw_expires, _, _ = cookie.partition(".")
        if not raw_expires.isdigit() or int(raw_expires) < time.time():
            return False
        return _same(cookie, self._session(secret, int(raw_expires)))

    # --- /status.json --------------------------------------------------------------------------------

    async def status_json(self, request: web.Request) -> web.StreamResponse:
        access = self._access(request)
        if access is Access.DISABLED:
            return _disabled_json()
        if access is Access.DENIED:
            return _unauthorized_json()
        response = json_response(asdict(await self.snapshot()))
        response.headers.update(_SECURITY_HEADERS)
        return response

    async def snapshot(self) -> Snapshot:
        slots = sorted(self.lifecycle.slots.values(), key=lambda s: s.config.slug)
        ids = [s.config.id for s in slots]
        locks: dict[int, LockInfo] = {}
        generations: dict[int, dict[str, int]] = {}
        instances: list[InstanceStatus] = []
        db_error: str | None = None
        try:
            # Bounded: the page must answer (with what the process knows) even when the DB hangs.
            async with asyncio.timeout(DB_TIMEOUT_SECONDS), self.pool.acquire() as conn:
                for row in await conn.fetch(_LOCKS_SQL, ids):
                    locks[row["tenant_id"]] = LockInfo(row["instance"], row["since"], row["heartbeat_at"])
                for row in await conn.fetch(_GENERATIONS_SQL, ids):
                    generations.setdefault(row["tenant_id"], {})[row["status"]] = row["n"]
                instances = [InstanceStatus(**dict(row)) for row in await conn.fetch(_INSTANCES_SQL)]
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            db_error = type(exc).__name__
            log.warning("status: database query failed", error=db_error)
        return Snapshot(
            instance=self.instance,
            version=__version__,
            generated_at=time.time(),
            locks_held=self.locker_held(),
            db_error=db_error,
            tenants=[_tenant(s, locks.get(s.config.id), generations.get(s.config.id, {})) for s in slots],
            instances=instances,
        )

    # --- /status -------------------------------------------------------------------------------------

    async def status(self, request: web.Request) -> web.StreamResponse:
        access = self._access(request)
        if access is Access.DISABLED:
            return _disabled_json()
        if request.method == "POST":
            return await self._login(request, access)
        if access is Access.DENIED:
            return _page("Sign in", _login_form(), status=401)
        snap = await self.snapshot()
        slug = request.query.get("tenant")
        if slug is None:
            return _page("Tenants", _overview(snap, open_access=access is Access.OPEN))
        tenant = next((t for t in snap.tenants if t.slug == slug), None)
        if tenant is None:
            return _page("Not found", f"<p>No tenant {_e(slug)} on this instance.</p>{_BACK}", status=404)
        return _page(tenant.slug, _detail(tenant, snap.generated_at))

    async def _login(self, request: web.Request, access: Access) -> web.StreamResponse:
        token = self.settings.operator_token
        if access is Access.OPEN or token is None:
            return _redirect()
        form = await request.post()
        given = form.get("token")
        if not isinstance(given, str) or not _same(given, token.get_secret_value()):
            log.warning("status: sign-in with a wrong operator token", remote=request.remote)
            return _page("Sign in", _login_form("Wrong token."), status=401)
        response = _redirect()
        response.set_cookie(
            COOKIE_NAME,
            self._session(token.get_secret_value(), int(time.time()) + SESSION_SECONDS),
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="Strict",
            # Render terminates TLS in front of us, so the request itself looks like plain http.
            secure=self.settings.env == "production" or request.secure,
        )
        return response


_LOCKS_SQL = """
    SELECT tenant_id, instance, extract(epoch FROM since)::float8 AS since,
           extract(epoch FROM heartbeat_at)::float8 AS heartbeat_at
    FROM lock_holders WHERE tenant_id = ANY($1::bigint[])"""

# "Today" is the UTC day, the same for every operator and instance.
_GENERATIONS_SQL = """
    SELECT tenant_id, status, count(*)::int AS n FROM jobs
    WHERE tenant_id = ANY($1::bigint[])
      AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
    GROUP BY tenant_id, status"""

_INSTANCES_SQL = f"""
    SELECT name, host, pid, version, extract(epoch FROM started_at)::float8 AS started_at,
           extract(epoch FROM heartbeat_at)::float8 AS heartbeat_at
    FROM instances WHERE heartbeat_at > now() - interval '{INSTANCE_ALIVE_SECONDS} seconds'
    ORDER BY started_at"""


def _tenant(slot: Slot, lock: LockInfo | None, generations: dict[str, int]) -> TenantStatus:
    config = slot.config
    return TenantStatus(
        id=config.id,
        slug=config.slug,
        display_name=config.display_name,
        state=slot.state.value,
        restarts=slot.restart_count,
        last_error=REDACTOR.redact(slot.last_error) if slot.last_error else None,
        next_attempt_at=slot.next_attempt_at,
        locked_here=slot.locked,
        lock=lock,
        last_update_at=slot.runtime.last_update_at if slot.runtime is not None else None,
        generations_today=dict(sorted(generations.items())),
    )


def _unauthorized_json() -> web.Response:
    response = json_response({"ok": False, "error": "unauthorized"}, status=401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="operator"'
    return response


def _disabled_json() -> web.Response:
    return json_response({"ok": False, "error": "not enabled: set OPERATOR_TOKEN"}, status=404)


def _redirect() -> web.Response:
    # 303: the browser follows with a GET, so a reload never re-posts the token.
    return web.Response(status=303, headers={"Location": "/status", **_SECURITY_HEADERS})


# --- HTML ----------------------------------------------------------------------------------------------

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


def _page(title: str, body: str, *, status: int = 200) -> web.Response:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{_e(title)} · supervisor status</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    return web.Response(text=document, content_type="text/html", status=status, headers=_SECURITY_HEADERS)


def _login_form(error: str | None = None) -> str:
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


def _overview(snap: Snapshot, *, open_access: bool) -> str:
    now = snap.generated_at
    parts = [
        "<h1>Supervisor status</h1>",
        f'<p class="muted">instance {_e(snap.instance)} · version {_e(snap.version)} · '
        f"{len(snap.tenants)} tenants · locks held here: {snap.locks_held} · "
        f'<a href="/status.json">JSON</a> · <a href="/status">refresh</a></p>',
    ]
    if open_access:
        parts.append('<p class="warn">No OPERATOR_TOKEN: this page is open because ENV=development.</p>')
    if snap.db_error:
        parts.append(f'<p class="warn">Database query failed ({_e(snap.db_error)}): locks and counts missing.</p>')
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
    parts.append("<h2>Tenants</h2>")
    if rows:
        head = "".join(f"<th>{_e(h)}</th>" for h in headers)
        parts.append(
            f'<table class="list" id="tenants"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        )
    else:
        parts.append('<p class="muted" id="tenants">No tenants on this instance.</p>')
    parts.append("<h2>Instances alive</h2>")
    inst_headers = ("Name", "Host", "PID", "Version", "Started", "Heartbeat")
    inst_rows = [
        _cells(
            zip(
                inst_headers,
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
    head = "".join(f"<th>{_e(h)}</th>" for h in inst_headers)
    parts.append(
        f'<table class="list" id="instances"><thead><tr>{head}</tr></thead><tbody>{"".join(inst_rows)}</tbody></table>'
    )
    return "".join(parts)


def _detail(t: TenantStatus, now: float) -> str:
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
