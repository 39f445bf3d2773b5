"""/metrics, /status and /status.json over real HTTP, with a real Lifecycle and real Postgres rows."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import aiohttp
import asyncpg
import pytest
from aiogram.client.session.aiohttp import AiohttpSession
from aiohttp import web

from shared import metrics
from shared.crypto import KeyRing, generate_key
from shared.settings import Settings
from supervisor.census import metric_rows
from supervisor.http import Handler, Routes, build_app, error_response
from supervisor.lifecycle import Lifecycle
from supervisor.ops import OpsEndpoints
from supervisor.ops_access import COOKIE_NAME
from supervisor.slot import Slot
from supervisor.slot_state import State
from supervisor.state import ServerState
from supervisor.tenants import NewTenant, TenantStore
from supervisor.throttle import MAX_FAILURES, WINDOW_SECONDS, FailureThrottle
from tenant_runtime.config import TenantConfig
from tenant_runtime.runtime import TenantRuntime
from tenant_runtime.services import Services
from tests.helpers import assert_no_secrets, make_token, serving

HOSTILE_NAME = '<script>alert("x")</script> & Co'


def _routes(ops: OpsEndpoints) -> Routes:
    """What supervisor.app wires: the real routes of supervisor.http reach the OpsEndpoints handlers."""

    def answer(status: int, message: str) -> Handler:
        async def handler(_request: web.Request) -> web.StreamResponse:
            return error_response(status, message)

        return handler

    return Routes(
        health=dict,
        webhook=answer(404, "unknown bot"),
        kie_callback=answer(404, "unknown tenant"),
        media=answer(404, "not found"),
        metrics=ops.metrics,
        status=ops.status,
        status_json=ops.status_json,
    )


@asynccontextmanager
async def serve_ops(ops: OpsEndpoints) -> AsyncIterator[str]:
    """Serve the supervisor's real app on an ephemeral 127.0.0.1 port; yields the base URL."""
    state = ServerState(instance=ops.instance, version="test", backend=_routes(ops))
    async with serving(build_app(state, max_body=64 * 1024)) as url:
        yield url


def _production_ops(pool: asyncpg.Pool) -> OpsEndpoints:
    """The endpoints as production builds them when no operator or metrics token is set."""
    settings = make_settings(env="production", master_keys=generate_key(), database_url="postgresql://x@y/z")
    return OpsEndpoints(
        settings, "prod", Lifecycle(_no_build, _no_mark, lambda: None, lambda _t, _k: False), pool, lambda: 0
    )


def make_settings(**values: object) -> Settings:
    base: dict[str, object] = {"env": "development", "metrics_token": None, "operator_token": None}
    base.update(values)
    # model_validate reads no environment and no .env: each test states its whole configuration.
    return Settings.model_validate(base)


@dataclass
class OpsEnv:
    ops: OpsEndpoints
    base_url: str
    alpha: TenantConfig
    beta: TenantConfig
    alive_instance: str
    stale_instance: str
    lock_instance: str
    secrets: list[str]

    @property
    def operator_token(self) -> str:
        token = self.ops.settings.operator_token
        assert token is not None
        return token.get_secret_value()

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.operator_token}"}


def _no_build(config: TenantConfig) -> TenantRuntime:
    raise AssertionError("the status tests never start a runtime")


async def _no_mark(tenant_id: int, reason: str, config_version: int) -> None:
    raise AssertionError("unexpected token_invalid")


@asynccontextmanager
async def ops_environment(pool: asyncpg.Pool, **settings: object) -> AsyncIterator[OpsEnv]:
    """Two real tenants in the registry and in a Lifecycle, with lock, instance and job rows."""
    suffix = secrets.token_hex(3)
    master_key = generate_key()
    store = TenantStore(pool, KeyRing([master_key]))
    bot_a, bot_b = (secrets.randbelow(10**9) + 10**9 for _ in range(2))
    alpha = await store.add(
        NewTenant(
            slug=f"alpha-{suffix}",
            display_name=HOSTILE_NAME,
            bot_token=make_token(bot_a, "Q"),
            bot_id=bot_a,
            kie_api_key="kie_" + secrets.token_hex(16),
            kie_webhook_key="hook_" + secrets.token_hex(16),
            admin_ids=[42],
        )
    )
    beta = await store.add(
        NewTenant(
            slug=f"beta-{suffix}",
            display_name="Beta shop",
            bot_token=make_token(bot_b, "Z"),
            bot_id=bot_b,
            kie_api_key="kie_" + secrets.token_hex(16),
            admin_ids=[43],
        )
    )
    lifecycle = Lifecycle(_no_build, _no_mark, lambda: None, lambda _t, _k: False)
    http_session = AiohttpSession()
    slot_a, slot_b = Slot(config=alpha), Slot(config=beta)
    for slot in (slot_a, slot_b):
        lifecycle.slots[slot.config.id] = slot
        lifecycle.by_slug[slot.config.slug] = slot
    # A real runtime object (no network until used); the status page only reads its last update time.
    slot_a.runtime = TenantRuntime(alpha, cast(Services, None), http_session)
    slot_a.runtime.last_update_at = time.time() - 5
    slot_a.locked = True
    slot_a.restart_count = 2
    slot_a.last_error = f"TelegramNetworkError: POST /bot{alpha.bot_token}/getUpdates failed"
    lifecycle._set_state(slot_a, State.ACTIVE)
    slot_b.restart_count = 1
    slot_b.next_attempt_at = time.time() + 30
    slot_b.last_error = f"KieError: key {beta.kie_api_key} rejected"
    lifecycle._set_state(slot_b, State.BACKOFF)

    alive, stale, lock_holder = f"inst-alive-{suffix}", f"inst-stale-{suffix}", f"inst-lock-{suffix}"
    await pool.execute(
        """INSERT INTO instances (name, host, pid, version, heartbeat_at) VALUES
           ($1, 'host-a', 101, '0.1.0', now()), ($2, 'host-b', 102, '0.0.9', now() - interval '5 minutes')""",
        alive,
        stale,
    )
    await pool.execute(
        "INSERT INTO lock_holders (tenant_id, instance, since) VALUES ($1, $2, now() - interval '1 minute')",
        alpha.id,
        lock_holder,
    )
    for n, (status, age) in enumerate([("delivered", 0), ("delivered", 0), ("failed", 0), ("delivered", 2)]):
        await pool.execute(
            """INSERT INTO jobs (tenant_id, user_id, chat_id, model, params, kie_input, price, idempotency_key,
                   correlation_id, status, deadline_at, created_at)
               VALUES ($1, 1, 1, 'm', '{}', '{}', 10, $2, 'c', $3, now() + interval '1 hour', now() - make_interval(days => $4))""",
            alpha.id,
            f"job-{suffix}-{n}",
            status,
            age,
        )
    ops = OpsEndpoints(make_settings(**settings), alive, lifecycle, pool, lambda: 1)
    # /metrics reads the slots' states when scraped, wired as `supervisor.compose` does.
    scraped_before, metrics.TENANT_STATES.source = metrics.TENANT_STATES.source, lambda: metric_rows(lifecycle.slots)
    secret_values = [master_key, *alpha.secrets, *beta.secrets]
    for token in (ops.settings.operator_token, ops.settings.metrics_token):
        if token is not None:
            secret_values.append(token.get_secret_value())
    try:
        async with serve_ops(ops) as base_url:
            yield OpsEnv(ops, base_url, alpha, beta, alive, stale, lock_holder, [s for s in secret_values if s])
    finally:
        metrics.TENANT_STATES.source = scraped_before
        await http_session.close()
        await pool.execute("DELETE FROM tenants WHERE id = ANY($1::bigint[])", [alpha.id, beta.id])
        await pool.execute("DELETE FROM instances WHERE name = ANY($1::text[])", [alive, stale])


@pytest.fixture(scope="module")
async def env(pool: asyncpg.Pool) -> AsyncIterator[OpsEnv]:
    async with ops_environment(
        pool, operator_token="op-" + secrets.token_urlsafe(24), metrics_token="mt-" + secrets.token_urlsafe(24)
    ) as ops_env:
        yield ops_env


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # Cookies are handled by hand so each test states exactly what it sends.
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=15)
    ) as session:
        yield session


async def _get(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, str, aiohttp.ClientResponse]:
    async with http.get(url, headers=headers or {}, allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp


async def _login(http: aiohttp.ClientSession, env: OpsEnv, token: str) -> aiohttp.ClientResponse:
    async with http.post(f"{env.base_url}/status", data={"token": token}, allow_redirects=False) as resp:
        await resp.read()
        return resp


async def _session_cookie(http: aiohttp.ClientSession, env: OpsEnv) -> str:
    resp = await _login(http, env, env.operator_token)
    assert resp.status == 303
    return resp.cookies[COOKIE_NAME].value


# --- /metrics --------------------------------------------------------------------------------------


async def test_metrics_needs_the_metrics_token(env: OpsEnv, http: aiohttp.ClientSession) -> None:
    token = env.ops.settings.metrics_token
    assert token is not None
    url = f"{env.base_url}/metrics"
    assert (await _get(http, url))[0] == 401
    assert (await _get(http, url, {"Authorization": "Bearer wrong"}))[0] == 401
    # The operator token is not the metrics token.
    assert (await _get(http, url, env.bearer()))[0] == 401
    status, body, resp = await _get(http, url, {"Authorization": f"Bearer {token.get_secret_value()}"})
    assert status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert "tg_updates_received_total" in body
    assert f'tenant_runtime_state{{state="active",tenant="{env.alpha.slug}"}} 1.0' in body
    assert f'tenant_runtime_state{{state="backoff",tenant="{env.beta.slug}"}} 1.0' in body
    pool_line = next(line for line in body.splitlines() if line.startswith("db_pool_connections "))
    assert float(pool_line.split()[1]) >= 1


async def test_metrics_open_without_a_metrics_token(pool: asyncpg.Pool, http: aiohttp.ClientSession) -> None:
    ops = OpsEndpoints(
        make_settings(), "solo", Lifecycle(_no_build, _no_mark, lambda: None, lambda _t, _k: False), pool, lambda: 0
    )
    metrics.DB_POOL_SIZE.set(-1)
    async with serve_ops(ops) as base_url:
        status, body, _ = await _get(http, f"{base_url}/metrics")
    assert status == 200
    # Refreshed from the pool by the scrape itself, not left at what the heartbeat last saw.
    assert f"db_pool_connections {float(pool.get_size())}" in body


# --- access to /status and /status.json ------------------------------------------------------------


async def test_status_needs_the_operator_token(env: OpsEnv, http: aiohttp.ClientSession) -> None:
    status, body, resp = await _get(http, f"{env.base_url}/status")
    assert status == 401
    assert '<form method="post" action="/status">' in body and 'type="password"' in body
    assert env.alpha.slug not in body
    status, body, resp = await _get(http, f"{env.base_url}/status.json")
    assert status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert env.alpha.slug not in body
    for path in ("/status", "/status.json"):
        assert (await _get(http, env.base_url + path, {"Authorization": "Bearer nope"}))[0] == 401
        assert (await _get(http, env.base_url + path, env.bearer()))[0] == 200


async def test_login_form_sets_a_session_cookie(env: OpsEnv, http: aiohttp.ClientSession) -> None:
    wrong = await _login(http, env, "not-the-token")
    assert wrong.status == 401
    assert COOKIE_NAME not in wrong.cookies
    async with http.post(f"{env.base_url}/status", data={"token": "x"}) as resp:
        assert "Wrong token." in await resp.text() and 'type="password"' in await resp.text()

    right = await _login(http, env, env.operator_token)
    assert right.status == 303 and right.headers["Location"] == "/status"
    raw_cookie = right.headers["Set-Cookie"]
    assert "HttpOnly" in raw_cookie and "SameSite=Strict" in raw_cookie and "Path=/" in raw_cookie
    cookie = right.cookies[COOKIE_NAME].value
    assert env.operator_token not in cookie

    status, body, resp = await _get(http, f"{env.base_url}/status", {"Cookie": f"{COOKIE_NAME}={cookie}"})
    assert status == 200 and resp.content_type == "text/html"
    assert '<table class="list" id="tenants">' in body
    assert env.alpha.slug in body and env.beta.slug in body
    assert '<meta name="viewport"' in body
    status, _, _ = await _get(http, f"{env.base_url}/status.json", {"Cookie": f"{COOKIE_NAME}={cookie}"})
    assert status == 200


async def test_forged_or_expired_cookies_are_refused(env: OpsEnv, http: aiohttp.ClientSession) -> None:
    cookie = await _session_cookie(http, env)
    expires, _, mac = cookie.partition(".")
    later = f"{int(expires) + 3600}.{mac}"  # a longer life is not signed
    expired = OpsEndpoints._session(env.operator_token, int(time.time()) - 1)
    other_key = OpsEndpoints._session("another-token", int(expires))
    for forged in (later, expired, other_key, "garbage", env.operator_token):
        status, _, _ = await _get(http, f"{env.base_url}/status.json", {"Cookie": f"{COOKIE_NAME}={forged}"})
        assert status == 401, forged[:12]


async def test_disabled_in_production_without_an_operator_token(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    ops = _production_ops(pool)
    async with serve_ops(ops) as base_url:
        assert (await _get(http, f"{base_url}/status"))[0] == 404
        assert (await _get(http, f"{base_url}/status.json", {"Authorization": "Bearer anything"}))[0] == 404
        async with http.post(f"{base_url}/status", data={"token": "x"}, allow_redirects=False) as resp:
            assert resp.status == 404


async def test_open_in_development_without_an_operator_token(pool: asyncpg.Pool, http: aiohttp.ClientSession) -> None:
    ops = OpsEndpoints(
        make_settings(), "dev", Lifecycle(_no_build, _no_mark, lambda: None, lambda _t, _k: False), pool, lambda: 0
    )
    async with serve_ops(ops) as base_url:
        status, body, _ = await _get(http, f"{base_url}/status")
        assert status == 200 and "ENV=development" in body
        assert (await _get(http, f"{base_url}/status.json"))[0] == 200


# --- content -----------------------------------------------------------------------------------------


async def test_status_json_shape(env: OpsEnv, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{env.base_url}/status.json", headers=env.bearer()) as resp:
        assert resp.status == 200
        data = await resp.json()
    assert set(data) == {"instance", "version", "generated_at", "locks_held", "db_error", "tenants", "instances"}
    assert data["instance"] == env.alive_instance and data["db_error"] is None and data["locks_held"] == 1
    tenants = {t["slug"]: t for t in data["tenants"]}
    assert list(tenants) == sorted(tenants) == [env.alpha.slug, env.beta.slug]
    alpha, beta = tenants[env.alpha.slug], tenants[env.beta.slug]
    assert set(alpha) == {
        "id", "slug", "display_name", "state", "restarts", "last_error", "next_attempt_at",
        "locked_here", "lock", "last_update_at", "generations_today",
    }  # fmt: skip
    assert alpha["display_name"] == HOSTILE_NAME
    assert alpha["state"] == "active" and alpha["restarts"] == 2 and alpha["locked_here"] is True
    assert alpha["last_error"].startswith("TelegramNetworkError: POST /bot") and "…" in alpha["last_error"]
    assert alpha["lock"]["instance"] == env.lock_instance
    assert 30 < time.time() - alpha["lock"]["since"] < 600
    assert isinstance(alpha["lock"]["heartbeat_at"], float)
    assert 0 < time.time() - alpha["last_update_at"] < 120
    assert alpha["next_attempt_at"] is None
    assert alpha["generations_today"] == {"delivered": 2, "failed": 1}  # the 2-day-old job is not today
    assert beta["state"] == "backoff" and beta["restarts"] == 1 and beta["lock"] is None
    assert beta["next_attempt_at"] > time.time() and beta["last_update_at"] is None
    assert beta["generations_today"] == {}
    names = {i["name"]: i for i in data["instances"]}
    assert env.alive_instance in names and env.stale_instance not in names
    assert names[env.alive_instance] | {"started_at": 0, "heartbeat_at": 0} == {
        "name": env.alive_instance, "host": "host-a", "pid": 101, "version": "0.1.0", "started_at": 0, "heartbeat_at": 0,
    }  # fmt: skip


async def test_html_overview_and_detail(env: OpsEnv, http: aiohttp.ClientSession) -> None:
    status, body, _ = await _get(http, f"{env.base_url}/status", env.bearer())
    assert status == 200
    assert "<script>" not in body and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in body
    assert f'href="/status?tenant={env.alpha.slug}"' in body
    assert 'class="badge s-active"' in body and 'class="badge s-backoff"' in body
    assert env.lock_instance in body and env.alive_instance in body and env.stale_instance not in body
    assert "3 <span" in body  # alpha's generations today

    status, body, _ = await _get(http, f"{env.base_url}/status?tenant={env.beta.slug}", env.bearer())
    assert status == 200
    assert 'id="tenant-detail"' in body and env.beta.slug in body and "Beta shop" in body
    assert re.search(r"Next attempt</th><td><time [^>]+>in \d+ s</time>", body)

    status, body, _ = await _get(http, f"{env.base_url}/status?tenant=%3Cb%3E", env.bearer())
    assert status == 404 and "&lt;b&gt;" in body


async def test_no_secret_in_any_response(env: OpsEnv, http: aiohttp.ClientSession) -> None:
    metrics_token = env.ops.settings.metrics_token
    assert metrics_token is not None
    bodies = [
        (await _get(http, f"{env.base_url}/metrics", {"Authorization": f"Bearer {metrics_token.get_secret_value()}"}))[
            1
        ],
        (await _get(http, f"{env.base_url}/status"))[1],
        (await _get(http, f"{env.base_url}/status.json"))[1],
        (await _get(http, f"{env.base_url}/status", env.bearer()))[1],
        (await _get(http, f"{env.base_url}/status.json", env.bearer()))[1],
    ]
    for slug in (env.alpha.slug, env.beta.slug):
        bodies.append((await _get(http, f"{env.base_url}/status?tenant={slug}", env.bearer()))[1])
    async with http.post(f"{env.base_url}/status", data={"token": "wrong"}) as resp:
        bodies.append(await resp.text())
    right = await _login(http, env, env.operator_token)
    bodies.append(right.headers["Set-Cookie"])
    for body in bodies:
        assert_no_secrets(body, env.secrets)


# --- hostile credentials, production defaults, throttling (issue 15, items 2 and 4) ------------------


async def _raw(base_url: str, request: bytes) -> tuple[int, bytes]:
    """Send bytes no HTTP client library would (invalid UTF-8 in a header); return status and body."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        body = await asyncio.wait_for(reader.readexactly(length), timeout=10)
    finally:
        writer.close()
    return int(head.split(b" ", 2)[1]), body


async def test_malformed_credentials_are_refused_not_errors(
    env: OpsEnv, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    # Each of these was a 500 with a traceback: int() of "²", int() of 5,000 digits, str.encode() of
    # the lone surrogates aiohttp makes of invalid UTF-8 header bytes.
    xff = {"X-Forwarded-For": "198.51.100.20"}  # its own throttle bucket
    for cookie in ("².x", "9" * 5000 + ".x", "1." + "é" * 64, ".", "1.2.3"):
        status, _, _ = await _get(http, f"{env.base_url}/status.json", {"Cookie": f"{COOKIE_NAME}={cookie}", **xff})
        assert status == 401, cookie[:10]
    for path in ("/status", "/status.json", "/metrics"):
        for header in (b"Authorization: Bearer \xff\xfe", b"Authorization: Bearer " + b"a" * 5000, b"Cookie: a=\xff"):
            request = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + header + b"\r\nConnection: close\r\n\r\n"
            status, _ = await _raw(env.base_url, request)
            assert status == 401, (path, header[:30])
    form = b"token=%FF%FE%C2"
    request = (
        b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"X-Forwarded-For: 198.51.100.21\r\nContent-Length: " + str(len(form)).encode() + b"\r\n\r\n" + form
    )
    assert (await _raw(env.base_url, request))[0] == 401
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_login_body_that_is_not_a_form_is_a_400(env: OpsEnv, http: aiohttp.ClientSession) -> None:
    headers = {"Content-Type": "multipart/form-data", "X-Forwarded-For": "198.51.100.22"}  # no boundary
    async with http.post(f"{env.base_url}/status", data=b"--x\r\n", headers=headers, allow_redirects=False) as resp:
        assert resp.status == 400


async def test_metrics_refused_in_production_without_a_metrics_token(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    ops = _production_ops(pool)
    async with serve_ops(ops) as base_url:
        status, body, _ = await _get(http, f"{base_url}/metrics")
    assert status == 404 and "METRICS_TOKEN" in body and "tg_updates" not in body


async def test_wrong_tokens_are_throttled_per_client_address(pool: asyncpg.Pool, http: aiohttp.ClientSession) -> None:
    async with ops_environment(pool, operator_token="op-" + secrets.token_urlsafe(24)) as env:
        attacker, operator = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}
        for _ in range(MAX_FAILURES):
            async with http.post(f"{env.base_url}/status", data={"token": "guess"}, headers=attacker) as resp:
                assert resp.status == 401
        # Now even the right token is refused from that address (else the throttle would be an oracle)...
        async with http.post(
            f"{env.base_url}/status", data={"token": env.operator_token}, headers=attacker, allow_redirects=False
        ) as resp:
            assert resp.status == 429 and 0 < int(resp.headers["Retry-After"]) <= WINDOW_SECONDS
        status, _, resp = await _get(http, f"{env.base_url}/status.json", {**env.bearer(), **attacker})
        assert status == 429 and "Retry-After" in resp.headers
        # ...while another address signs in as usual.
        async with http.post(
            f"{env.base_url}/status", data={"token": env.operator_token}, headers=operator, allow_redirects=False
        ) as resp:
            assert resp.status == 303
        # Wrong bearer tokens count too.
        bearer_guess = {"Authorization": "Bearer guess", "X-Forwarded-For": "203.0.113.9"}
        statuses = [(await _get(http, f"{env.base_url}/status.json", bearer_guess))[0] for _ in range(MAX_FAILURES + 1)]
        assert statuses == [401] * MAX_FAILURES + [429]


def test_throttle_forgets_failures_after_the_window() -> None:
    now = [1000.0]
    throttle = FailureThrottle(limit=3, window=60, max_keys=2, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("a") is None
        throttle.failed("a")
    assert throttle.retry_after("a") == 60
    now[0] += 59.5
    assert throttle.retry_after("a") == pytest.approx(0.5)
    now[0] += 1
    assert throttle.retry_after("a") is None
    throttle.failed("b")
    throttle.failed("c")
    throttle.failed("d")  # the table stays bounded: the oldest address is forgotten
    assert len(throttle._failures) == 2
    throttle.succeeded("d")
    assert throttle.retry_after("d") is None
