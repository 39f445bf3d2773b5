"""Bans (issue 17, item 2) against real Postgres: held money released, balance kept, audited, once a day."""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from shared.registry import load_registry
from shared.settings import Settings
from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.generation.job import JobOutcome, JobStatus
from tenant_runtime.generation.jobs import JobService
from tenant_runtime.kie.client import KieClient, KieClientConfig
from tenant_runtime.moderation import bans
from tenant_runtime.moderation.audit import AuditAction, recent
from tenant_runtime.moderation.bans import BAN_FAIL_REASON, BanOutcome
from tenant_runtime.users import Users, is_name_query, is_user_query
from tests import own_database
from tests.helpers import add_bare_tenants

REGISTRY = load_registry()
PAID = REGISTRY.get("google/imagen4-fast")
ADMIN = 555
_bots = iter(range(883_300_000, 883_400_000))
_users = iter(range(42_000_000, 43_000_000))


database_url = own_database.database_url
pool = own_database.pool


class _Tenant:
    def __init__(self, config: object) -> None:
        self.config = config
        self.bot = None


async def _setup(pool: asyncpg.Pool) -> tuple[int, int, JobService, object]:
    (config,) = await add_bare_tenants(pool, f"ban{secrets.token_hex(3)}", 1, first_bot_id=next(_bots))
    user = next(_users)
    await Users(pool).touch(config.id, user, language="ru", first_name="Bob", username=f"Bob_{user}")
    ledger = Ledger(pool)
    await ledger.credit(config.id, user, 10_000, kind="admin_credit", unique_key="fund", actor="admin:1", reason="t")
    settings = Settings.model_validate({"env": "development", "metrics_token": None, "operator_token": None})
    kie = KieClient("http://127.0.0.1:9", KieClientConfig(read_timeout_s=1))
    service = JobService(pool, ledger, kie, REGISTRY, settings, notifier=None)  # type: ignore[arg-type]
    return config.id, user, service, config


async def test_a_ban_stops_running_generations_releases_held_money_and_keeps_the_balance(pool: asyncpg.Pool) -> None:
    tenant_id, user, service, config = await _setup(pool)
    for i in range(2):
        await service.create(
            config,  # type: ignore[arg-type]
            user_id=user,
            chat_id=user,
            spec=PAID,
            params={"prompt": "x"},
            price=320,
            idempotency_key=f"k{i}",
            language="ru",
            correlation_id="c",
        )
    ledger = Ledger(pool)
    assert (await ledger.balance(tenant_id, user)).held == 640
    result = await bans.ban(pool, ledger, tenant_id, user, ADMIN, "  spam  ")
    assert (result.outcome, result.stopped_jobs, result.released) == (BanOutcome.DONE, 2, 640)
    balance = await ledger.balance(tenant_id, user)
    assert (balance.available, balance.held) == (10_000, 0), "held money released, the balance kept"
    statuses = await pool.fetch("SELECT status, fail_reason FROM jobs WHERE tenant_id = $1", tenant_id)
    assert {(r["status"], r["fail_reason"]) for r in statuses} == {(JobStatus.FAILED, BAN_FAIL_REASON)}
    holds = await pool.fetch("SELECT status FROM holds WHERE tenant_id = $1", tenant_id)
    assert {h["status"] for h in holds} == {"released"}
    assert await ledger.reconcile(tenant_id) == []
    # A KIE result arriving after the ban changes nothing: the user is never charged.
    job_id = await pool.fetchval("SELECT min(id) FROM jobs WHERE tenant_id = $1", tenant_id)
    await service.finish(_Tenant(config), job_id, JobOutcome(ok=True, result_urls=("http://x/y.png",)))  # type: ignore[arg-type]
    assert (await ledger.balance(tenant_id, user)).available == 10_000
    (entry,) = await recent(pool, tenant_id, str(user))
    assert (entry.actor, entry.action, entry.detail) == (f"admin:{ADMIN}", AuditAction.BAN, "spam")
    found = await Users(pool).get(tenant_id, user)
    assert found is not None and found.banned and found.ban_reason == "spam"


async def test_ban_twice_unban_and_unknown_users(pool: asyncpg.Pool) -> None:
    tenant_id, user, _service, _config = await _setup(pool)
    ledger = Ledger(pool)
    assert (await bans.ban(pool, ledger, tenant_id, user, ADMIN, "r")).outcome is BanOutcome.DONE
    assert (await bans.ban(pool, ledger, tenant_id, user, ADMIN, "r")).outcome is BanOutcome.ALREADY
    assert (await bans.unban(pool, tenant_id, user, ADMIN + 1, "appealed")).outcome is BanOutcome.DONE
    assert (await bans.unban(pool, tenant_id, user, ADMIN, "again")).outcome is BanOutcome.ALREADY
    assert (await bans.ban(pool, ledger, tenant_id, 1, ADMIN, "r")).outcome is BanOutcome.UNKNOWN_USER
    entries = await recent(pool, tenant_id, str(user))
    assert [(e.action, e.actor, e.detail) for e in entries] == [
        (AuditAction.UNBAN, f"admin:{ADMIN + 1}", "appealed"),
        (AuditAction.BAN, f"admin:{ADMIN}", "r"),
    ]
    found = await Users(pool).get(tenant_id, user)
    assert found is not None and not found.banned


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
async def test_a_ban_needs_a_reason_and_writes_nothing_without_one(pool: asyncpg.Pool, reason: str) -> None:
    tenant_id, user, _service, _config = await _setup(pool)
    with pytest.raises(ValueError, match="reason"):
        await bans.ban(pool, Ledger(pool), tenant_id, user, ADMIN, reason)
    assert await recent(pool, tenant_id) == []
    found = await Users(pool).get(tenant_id, user)
    assert found is not None and not found.banned


async def test_a_banned_user_is_told_once_a_day(pool: asyncpg.Pool) -> None:
    tenant_id, user, _service, _config = await _setup(pool)
    assert not await bans.tell_today(pool, tenant_id, user, "Europe/Moscow"), "not banned: nothing to tell"
    await bans.ban(pool, Ledger(pool), tenant_id, user, ADMIN, "r")
    told = [await bans.tell_today(pool, tenant_id, user, "Europe/Moscow") for _ in range(5)]
    assert told == [True, False, False, False, False]
    await pool.execute(
        "UPDATE bot_users SET ban_told_on = ban_told_on - 1 WHERE tenant_id = $1 AND user_id = $2", tenant_id, user
    )
    assert await bans.tell_today(pool, tenant_id, user, "Europe/Moscow"), "a new day: told again"


async def test_admins_find_users_by_id_or_username(pool: asyncpg.Pool) -> None:
    tenant_id, user, _service, _config = await _setup(pool)
    users = Users(pool)
    for query in (str(user), f"@bob_{user}", f"BOB_{user}", f" @Bob_{user} "):
        found = await users.find(tenant_id, query)
        assert found is not None and found.user_id == user, query
    assert await users.find(tenant_id, "@nobody_here") is None
    for bad in ("", "@ab", "bob smith", "12345678901234567890", "@" + "x" * 40, "💥"):
        assert not is_user_query(bad)
        assert await users.find(tenant_id, bad) is None


async def test_admins_search_users_by_part_of_a_name_or_username(pool: asyncpg.Pool) -> None:
    tenant_id, bob, _service, _config = await _setup(pool)
    users = Users(pool)
    anna, other = next(_users), next(_users)
    await users.touch(tenant_id, anna, language="ru", first_name="Анна_100%", username=None)
    await users.touch(tenant_id, other, language="ru", first_name="Zed", username="zed_the_third")
    assert [u.user_id for u in await users.search(tenant_id, "bob")] == [bob]
    assert [u.user_id for u in await users.search(tenant_id, "АННА")] == [anna], "any case, any script"
    assert [u.user_id for u in await users.search(tenant_id, "_100%")] == [anna], "% and _ match themselves"
    assert [u.user_id for u in await users.search(tenant_id, "@zed_the")] == [other]
    assert [u.user_id for u in await users.search(tenant_id, "%")] == [anna], "a literal %, not everyone"
    assert await users.search(tenant_id, "nobody") == []
    (other_tenant,) = await add_bare_tenants(pool, f"bx{secrets.token_hex(3)}", 1, first_bot_id=next(_bots))
    assert await users.search(other_tenant.id, "bob") == [], "only this tenant's users"
    for query, expected in (("bob smith", True), ("b", False), ("x" * 65, False), ("tab\there", False)):
        assert is_name_query(query) is expected, query
