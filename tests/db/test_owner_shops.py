"""The rules of shops owned through the platform bot, against real Postgres: only the owner acts on a shop;
every state change is a compare-and-set, so the second of two racing presses changes nothing; an owner
never undoes an operator's `disabled`; ONBOARDING=open goes live at once."""

from __future__ import annotations

import asyncio
import secrets
from decimal import Decimal

import asyncpg
import pytest
from structlog.testing import capture_logs

from shared.crypto import KeyRing, generate_key
from shared.settings import Settings
from supervisor.onboarding.shops import MAX_ADMINS, NotYours, OwnerShops, ShopRequest, Taken
from supervisor.tenants import TenantStore
from tenant_runtime.config import TenantStatus
from tests.helpers import make_token

OPERATOR = 777
_bot_ids = iter(range(880_700_001, 880_799_999))


def _shops(pool: asyncpg.Pool, onboarding: str = "approval") -> tuple[OwnerShops, TenantStore]:
    settings = Settings.model_validate({"env": "development", "onboarding": onboarding})
    store = TenantStore(pool, KeyRing([generate_key()]))
    return OwnerShops(store, settings), store


def _request(owner: int, slug: str | None = None) -> ShopRequest:
    bot_id = next(_bot_ids)
    return ShopRequest(
        owner_id=owner,
        name="Shop",
        slug=slug or f"own-{secrets.token_hex(4)}",
        bot_token=make_token(bot_id, secrets.token_hex(2)),
        bot_id=bot_id,
        kie_api_key="kie_" + secrets.token_hex(16),
        language="ru",
        markup=Decimal("2"),
    )


async def test_two_operators_approving_at_once_approve_once(pool: asyncpg.Pool) -> None:
    shops, _ = _shops(pool)
    shop = await shops.create(_request(5001))
    assert shop.status is TenantStatus.PENDING and shop.admin_ids == {5001}
    first, second = await asyncio.gather(shops.approve(shop.id, OPERATOR), shops.approve(shop.id, OPERATOR + 1))
    assert [c is not None for c in (first, second)].count(True) == 1
    approvals = await pool.fetchval(
        "SELECT count(*) FROM operator_audit WHERE tenant_id = $1 AND action = 'shop_approve'", shop.id
    )
    assert approvals == 1
    assert await shops.reject(shop.id, OPERATOR) is None, "an approved shop is not rejected afterwards"


async def test_a_rejected_request_leaves_no_tenant_and_frees_the_owner(pool: asyncpg.Pool) -> None:
    shops, _ = _shops(pool)
    shop = await shops.create(_request(5002))
    with pytest.raises(Taken) as second:
        await shops.create(_request(5002))
    assert second.value.what == "pending"
    assert await shops.reject(shop.id, OPERATOR) is not None
    assert await pool.fetchval("SELECT count(*) FROM tenants WHERE id = $1", shop.id) == 0
    assert await shops.approve(shop.id, OPERATOR) is None
    assert (await shops.create(_request(5002))).status is TenantStatus.PENDING


async def test_only_the_owner_acts_and_never_undoes_an_operator(pool: asyncpg.Pool) -> None:
    shops, store = _shops(pool, onboarding="open")
    shop = await shops.create(_request(5003))
    assert shop.status is TenantStatus.ENABLED, "ONBOARDING=open: live at once"
    for act in (
        shops.pause(5004, shop.id),
        shops.resume(5004, shop.id),
        shops.set_kie_key(5004, shop.id, "kie_" + secrets.token_hex(16)),
        shops.add_admin(5004, shop.id, 42),
    ):
        with pytest.raises(NotYours):
            await act
    with pytest.raises(NotYours):
        await shops.pause(5003, 10**12)  # no such shop: the same answer
    assert (await store.get_by_id(shop.id)) == shop, "nothing changed"

    assert (await shops.pause(5003, shop.id)) is not None
    assert await shops.pause(5003, shop.id) is None, "paused already"
    await store.set_status(shop.slug, TenantStatus.DISABLED)
    assert await shops.resume(5003, shop.id) is None, "an owner never resumes what an operator disabled"
    assert (await store.get_by_id(shop.id)).status is TenantStatus.DISABLED  # type: ignore[union-attr]


async def test_admins_are_added_once_and_up_to_the_limit(pool: asyncpg.Pool) -> None:
    shops, _ = _shops(pool, onboarding="open")
    shop = await shops.create(_request(5005))
    config, added = await shops.add_admin(5005, shop.id, 42)
    assert added and config.admin_ids == {5005, 42}
    config, added = await shops.add_admin(5005, shop.id, 42)
    assert not added and config.admin_ids == {5005, 42}
    for admin in range(100, 100 + MAX_ADMINS - 2):
        await shops.add_admin(5005, shop.id, admin)
    with pytest.raises(Taken):
        await shops.add_admin(5005, shop.id, 99)
    assert len((await shops.owned(5005))[0].admin_ids) == MAX_ADMINS


async def test_a_slug_or_bot_taken_meanwhile_is_refused_by_name(pool: asyncpg.Pool) -> None:
    shops, _ = _shops(pool, onboarding="open")
    first = await shops.create(_request(5006))
    with pytest.raises(Taken) as slug:
        await shops.create(_request(5007, slug=first.slug))
    assert slug.value.what == "slug"
    clash = _request(5008)
    await shops.create(clash)
    with pytest.raises(Taken) as bot:
        await shops.create(ShopRequest(**{**clash.__dict__, "owner_id": 5009, "slug": f"own-{secrets.token_hex(4)}"}))
    assert bot.value.what == "bot"
    assert await pool.fetchval("SELECT count(*) FROM tenants WHERE owner_id = ANY($1::bigint[])", [5007, 5009]) == 0


async def test_a_revoked_platform_token_is_said_once_and_retried_later(pool: asyncpg.Pool) -> None:
    """An operator's revoked PLATFORM_BOT_TOKEN: one warning, not a crash loop with tracebacks."""
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession

    from sandbox.telegram.server import FakeTelegram
    from supervisor.onboarding.poller import PlatformPoller

    fake = FakeTelegram()
    await fake.start()
    revoked = make_token(880_799_990, "R")
    session = AiohttpSession(api=fake.api_server)
    try:
        await pool.execute("DELETE FROM platform_bot_lease")
        poller = PlatformPoller(pool, "owner-shops-test", Bot(revoked, session=session), Dispatcher(), long_poll=1)
        with capture_logs() as logs:
            await poller.tick()
            await poller.tick()  # within the retry interval: not asked again, not said again
    finally:
        await session.close()
        await fake.stop()
    told = [e for e in logs if "rejects PLATFORM_BOT_TOKEN" in e["event"]]
    assert len(told) == 1 and told[0]["log_level"] == "warning"
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]
    assert revoked not in str(logs)
