"""Operator endpoints: `/metrics` (Prometheus), `/status` (HTML for a phone) and `/status.json`.

Access rules, strict by default:

* `/metrics` needs `Authorization: Bearer <METRICS_TOKEN>` when METRICS_TOKEN is set, else 401.
  Without it, it answers 404 in production (series name tenants and their traffic) and is open
  only when ENV=development.
* `/status` and `/status.json` need OPERATOR_TOKEN, given either as `Authorization: Bearer <token>`
  or as the session cookie the login form sets. Without OPERATOR_TOKEN they answer 404 in production
  (nobody can be let in, so the pages do not exist) and are open only when ENV=development.
* The cookie never holds the token: it is `<expiry>.<HMAC-SHA256(key=token, "status-session:<expiry>")>`,
  HttpOnly, SameSite=Strict, Secure in production, valid for 12 hours. It is stateless, so it works on
  every instance (old and new overlap during a deploy), and changing OPERATOR_TOKEN revokes it.
* Wrong tokens (sign-in form or bearer) are throttled per client address (supervisor.throttle):
  after 10 failures in 5 minutes that address gets 429 until the oldest failure is 5 minutes old.
* Every credential a request carries is checked for shape first (printable ASCII, bounded length;
  shared.strict), so a malformed one is a 401, never an exception.

Every value shown is already free of secrets (no token, key or webhook secret is ever read here) and
errors pass through the redactor once more; the HTML escapes every value.

Here: the handlers. The access decision is supervisor.ops_access, what the pages show
supervisor.ops_snapshot, and their HTML supervisor.ops_html.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import metrics
from shared.logs import get_logger
from shared.settings import Settings
from supervisor.http import json_response
from supervisor.lifecycle import Lifecycle
from supervisor.ops_access import (
    COOKIE_NAME,
    SESSION_SECONDS,
    Access,
    bearer,
    credential,
    decide,
    same,
    session_cookie,
)
from supervisor.ops_html import SECURITY_HEADERS, detail, login_form, not_found, overview, page
from supervisor.ops_snapshot import Snapshot, read_snapshot
from supervisor.throttle import FailureThrottle, client_address

__all__ = ["OpsEndpoints"]

log = get_logger(__name__)


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
        self.throttle = FailureThrottle()

    # --- /metrics ------------------------------------------------------------------------------------

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        token = self.settings.metrics_token
        if token is None and self.settings.env == "production":
            return json_response({"ok": False, "error": "not enabled: set METRICS_TOKEN"}, status=404)
        if token is not None:
            given = bearer(request)
            if not given or not same(given, token.get_secret_value()):
                return _unauthorized_json()
        # The heartbeat refreshes these every 10 s; a scrape should not see a stale pool.
        metrics.DB_POOL_SIZE.set(self.pool.get_size())
        metrics.DB_POOL_IDLE.set(self.pool.get_idle_size())
        return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # --- access --------------------------------------------------------------------------------------

    def _access(self, request: web.Request) -> Access:
        return decide(request, self.settings, self.throttle)

    # The cookie's value, kept here under its old name for the tests that forge expired and foreign ones.
    _session = staticmethod(session_cookie)

    # --- /status.json --------------------------------------------------------------------------------

    async def status_json(self, request: web.Request) -> web.StreamResponse:
        access = self._access(request)
        if access is Access.DISABLED:
            return _disabled_json()
        if access is Access.THROTTLED:
            return self._throttled_json(request)
        if access is Access.DENIED:
            return _unauthorized_json()
        response = json_response(asdict(await self.snapshot()))
        response.headers.update(SECURITY_HEADERS)
        return response

    async def snapshot(self) -> Snapshot:
        return await read_snapshot(self.instance, self.lifecycle, self.pool, self.locker_held)

    # --- /status -------------------------------------------------------------------------------------

    async def status(self, request: web.Request) -> web.StreamResponse:
        access = self._access(request)
        if access is Access.DISABLED:
            return _disabled_json()
        if access is Access.THROTTLED:
            return self._throttledpage(request)
        if request.method == "POST":
            return await self._login(request, access)
        if access is Access.DENIED:
            return page("Sign in", login_form(), status=401)
        snap = await self.snapshot()
        slug = request.query.get("tenant")
        if slug is None:
            return page("Tenants", overview(snap, open_access=access is Access.OPEN))
        tenant = next((t for t in snap.tenants if t.slug == slug), None)
        if tenant is None:
            return page("Not found", not_found(slug), status=404)
        return page(tenant.slug, detail(tenant, snap.generated_at))

    async def _login(self, request: web.Request, access: Access) -> web.StreamResponse:
        token = self.settings.operator_token
        if access is Access.OPEN or token is None:
            return _redirect()
        address = client_address(request)
        if self.throttle.retry_after(address) is not None:
            return self._throttledpage(request)
        try:
            form = await request.post()
        except ValueError:  # a body that is not a form (bad multipart, undecodable): the caller's fault
            return page("Sign in", login_form("That was not a sign-in form."), status=400)
        raw = form.get("token")
        given = credential(raw) if isinstance(raw, str) else None
        if given is None or not same(given, token.get_secret_value()):
            self.throttle.failed(address)
            log.warning("status: sign-in with a wrong operator token", remote=address)
            return page("Sign in", login_form("Wrong token."), status=401)
        self.throttle.succeeded(address)
        response = _redirect()
        response.set_cookie(
            COOKIE_NAME,
            session_cookie(token.get_secret_value(), int(time.time()) + SESSION_SECONDS),
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="Strict",
            # Render terminates TLS in front of us, so the request itself looks like plain http.
            secure=self.settings.env == "production" or request.secure,
        )
        return response

    def _retry_after(self, request: web.Request) -> str:
        return str(max(1, round(self.throttle.retry_after(client_address(request)) or 1)))

    def _throttled_json(self, request: web.Request) -> web.Response:
        response = json_response({"ok": False, "error": "too many wrong tokens; try again later"}, status=429)
        response.headers["Retry-After"] = self._retry_after(request)
        return response

    def _throttledpage(self, request: web.Request) -> web.Response:
        seconds = self._retry_after(request)
        response = page("Sign in", login_form(f"Too many wrong tokens: try again in {seconds} s."), status=429)
        response.headers["Retry-After"] = seconds
        return response


def _unauthorized_json() -> web.Response:
    response = json_response({"ok": False, "error": "unauthorized"}, status=401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="operator"'
    return response


def _disabled_json() -> web.Response:
    return json_response({"ok": False, "error": "not enabled: set OPERATOR_TOKEN"}, status=404)


def _redirect() -> web.Response:
    # 303: the browser follows with a GET, so a reload never re-posts the token.
    return web.Response(status=303, headers={"Location": "/status", **SECURITY_HEADERS})
