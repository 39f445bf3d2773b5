"""A KIE callback while Postgres is unreachable (issue 15, item 7): 503 so KIE retries, one warning
line "database unavailable", no traceback; and the next callback after the outage is applied.

Real Postgres behind a TCP proxy the test cuts, the real callback route of supervisor.http, the real
JobService; KIE itself is not called on this path."""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest
import structlog
from aiohttp import web

from shared.crypto import KeyRing, generate_key
from shared.db import create_pool
from shared.logs import configure_logging
from shared.registry import load_registry
from shared.settings import Settings
from supervisor.callbacks import KieCallbacks
from supervisor.http import Routes, build_app, error_response
from supervisor.state import ServerState
from supervisor.tenants import NewTenant, TenantStore
from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.config import TenantConfig
from tenant_runtime.generation.callback_token import make_token
from tenant_runtime.generation.delivery import TelegramNotifier
from tenant_runtime.generation.jobs import JobService
from tenant_runtime.kie.client import KieClient
from tests.helpers import make_token as make_bot_token
from tests.helpers import serving
from tests.tcp_proxy import TcpProxy


@dataclass
class Handle:
    """What the callback route needs of a runtime: the tenant's config (the bot is not used)."""

    config: TenantConfig
    bot: None = None


@pytest.fixture
async def logs() -> AsyncIterator[io.StringIO]:
    stream = io.StringIO()
    structlog.reset_defaults()
    configure_logging("INFO", "json", stream=stream)
    yield stream
    structlog.reset_defaults()
    configure_logging("INFO", "console")


async def _unanswered(request: web.Request) -> web.StreamResponse:
    return error_response(404, "not in this test")


async def test_callback_during_a_database_outage_is_a_503_and_one_warning(
    database_url: str, pool: asyncpg.Pool, logs: io.StringIO
) -> None:
    bot_id = 730_000_000 + secrets.randbelow(10**6)
    config = await TenantStore(pool, KeyRing([generate_key()])).add(
        NewTenant(f"outage-{secrets.token_hex(3)}", "Outage", make_bot_token(bot_id, "o"), bot_id, None, [])
    )
    job_id = await pool.fetchval(
        """INSERT INTO jobs (tenant_id, user_id, chat_id, model, params, kie_input, price, idempotency_key,
               correlation_id, status, task_id, deadline_at)
           VALUES ($1, 1, 1, 'm', '{}', '{}', 0, $2, 'c', 'submitted', 'task-1', now() + interval '1 hour')
           RETURNING id""",
        config.id,
        f"outage-{secrets.token_hex(4)}",
    )
    proxy = TcpProxy.for_dsn(database_url)
    await proxy.start()
    proxied = await create_pool(proxy.dsn(database_url), 2, application_name="tests-outage")
    kie = KieClient("http://127.0.0.1:9")  # never called on the callback path
    settings = Settings.model_validate({"env": "development"})
    jobs = JobService(proxied, Ledger(proxied), kie, load_registry(), settings, TelegramNotifier(proxied))
    route = KieCallbacks(lambda slug: Handle(config) if slug == config.slug else None, jobs)  # type: ignore[arg-type,return-value]
    routes = Routes(
        health=dict,
        webhook=_unanswered,
        kie_callback=route,
        media=_unanswered,
        metrics=_unanswered,
        status=_unanswered,
        status_json=_unanswered,
    )
    app = build_app(ServerState("outage", "test", backend=routes), max_body=64 * 1024)
    path = f"/kie/callback/{config.slug}/" + make_token(config.callback_secret, config.id, job_id)
    body = json.dumps({"code": 200, "msg": "ok", "data": {"taskId": "task-1", "state": "generating"}})
    try:
        async with serving(app) as base, aiohttp.ClientSession() as http:
            url = base + path
            async with http.post(url, data=body) as resp:
                assert resp.status == 200, await resp.text()
            await proxy.cut()
            for _ in range(2):
                async with http.post(url, data=body) as resp:
                    assert resp.status == 503 and (await resp.json())["error"] == "temporarily unavailable"
            await proxy.restore()
            async with http.post(url, data=body) as resp:
                assert resp.status == 200, await resp.text()
    finally:
        await proxied.close()
        await kie.aclose()
        await proxy.cut()
        await pool.execute("DELETE FROM tenants WHERE id = $1", config.id)
    records = [json.loads(line) for line in logs.getvalue().splitlines()]
    outage = [r for r in records if r["event"] == "database unavailable"]
    assert len(outage) == 2, records  # one line per refused callback
    assert all(r["level"] == "warning" and r["tenant"] == config.slug for r in outage)
    assert not [r for r in records if r["level"] in ("error", "critical")], records
    # No traceback from the request path (aiohttp logs one for an unhandled error). asyncpg's pool logs
    # its own failed reconnects in the background during any outage; that is not this route's doing.
    assert not [r for r in records if "exception" in r and r["logger"] != "asyncpg.pool"], records
