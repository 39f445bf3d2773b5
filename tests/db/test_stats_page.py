"""/status/stats and /status/stats.json over real HTTP with real Postgres rows: every shop's numbers, the
operator's token required, and any `period` other than today, 7d or 30d a clear 400 (hypothesis)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.shop_history import seed_shop_history
from shared.settings import Settings
from supervisor.http import Routes, build_app, error_response
from supervisor.lifecycle import Lifecycle
from supervisor.ops import OpsEndpoints
from supervisor.state import ServerState
from supervisor.stats_page import StatsPage
from tenant_runtime.analytics import Period, shop_stats
from tests.helpers import add_bare_tenants, serving

TOKEN = "op-" + secrets.token_hex(16)


async def _refuse(_request: web.Request) -> web.StreamResponse:
    return error_response(404, "not found")


@asynccontextmanager
async def served(pool: asyncpg.Pool) -> AsyncIterator[str]:
    settings_ = Settings.model_validate({"env": "development", "operator_token": TOKEN, "metrics_token": None})
    lifecycle = Lifecycle(lambda c: None, lambda *_: None, lambda: None, lambda _t, _k: False)  # type: ignore[arg-type,return-value]
    ops = OpsEndpoints(settings_, "stats-test", lifecycle, pool, lambda: 0)
    page = StatsPage(ops, pool)
    routes = Routes(
        health=dict,
        webhook=_refuse,
        kie_callback=_refuse,
        media=_refuse,
        metrics=ops.metrics,
        status=ops.status,
        status_json=ops.status_json,
        stats=page.page,
        stats_json=page.json,
    )
    async with serving(build_app(ServerState(instance="t", version="t", backend=routes), max_body=65536)) as url:
        yield url


@pytest.fixture(scope="module")
async def base_url(module_pool: asyncpg.Pool) -> AsyncIterator[str]:
    shops = await add_bare_tenants(module_pool, "pgstat", 3, first_bot_id=881_200_000)
    for i, shop in enumerate(shops[:2]):
        await seed_shop_history(
            module_pool, shop.id, users=40, topups=60, generations=120, seed=i, first_user=(i + 1) * 10**6
        )
    async with served(module_pool) as url:
        yield url


async def test_every_shop_with_the_numbers_its_admins_see(base_url: str, module_pool: asyncpg.Pool) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        for period in Period:
            async with http.get(f"{base_url}/status/stats.json?period={period.value}", headers=auth) as resp:
                assert resp.status == 200
                body = await resp.json()
            assert body["period"] == period.value
            by_slug = {row["slug"]: row for row in body["shops"]}
            assert set(by_slug) == {"pgstat-00", "pgstat-01", "pgstat-02"}
            for slug, row in by_slug.items():
                tenant_id = await module_pool.fetchval("SELECT id FROM tenants WHERE slug = $1", slug)
                stats = await shop_stats(module_pool, tenant_id, "Europe/Moscow", period)
                assert (row["revenue"], row["spend"], row["new_users"], row["paying_users"], row["generations"]) == (
                    stats.revenue,
                    stats.spend,
                    stats.new_users,
                    stats.paying_users,
                    stats.generations,
                ), (slug, period)
            revenues = [row["revenue"] for row in body["shops"]]
            assert revenues == sorted(revenues, reverse=True)
        async with http.get(f"{base_url}/status/stats", headers=auth) as resp:
            page = await resp.text()
        assert resp.status == 200 and "pgstat-01" in page and "<b>30d</b>" in page
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with http.get(f"{base_url}/status/stats.json", headers=headers) as resp:
                assert resp.status == 401


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(period=st.text(max_size=30))
async def test_any_period_is_answered_without_a_server_error(base_url: str, period: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        for path in ("/status/stats.json", "/status/stats"):
            async with http.get(f"{base_url}{path}", params={"period": period}, headers=auth) as resp:
                text = await resp.text()
                if period in {p.value for p in Period}:
                    assert resp.status == 200
                else:
                    assert resp.status == 400 and "period must be one of: today, 7d, 30d" in text
