"""Limits enforced in Postgres, in the transaction that creates the job and its hold (issue 17, item 1).

Real Postgres; two pools stand in for two replicas. Every refusal is checked to have written nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from typing import Any

import asyncpg
import pytest

from shared.registry import ModelSpec, load_registry
from shared.settings import Settings
from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.config import TenantConfig
from tenant_runtime.generation.job import JobStatus
from tenant_runtime.generation.jobs import JobService
from tenant_runtime.kie.client import KieClient, KieClientConfig
from tenant_runtime.limits.job_limits import FreeQuotaUsed, TooManyOpenJobs, free_allowance
from tenant_runtime.limits.rate import RateVerdict, count_hit
from tenant_runtime.limits.shop_limits import ShopLimits
from tests import own_database
from tests.helpers import add_bare_tenants

REGISTRY = load_registry()
FREE = REGISTRY.get("z-image")
PAID = REGISTRY.get("google/imagen4-fast")
FREE_PARAMS = {"prompt": "a fox", "aspect_ratio": "1:1"}
PAID_PARAMS = {"prompt": "a fox"}
_bots = iter(range(883_100_000, 883_200_000))
_users = iter(range(40_000_000, 41_000_000))


database_url = own_database.database_url
pool = own_database.pool


def _service(pool: asyncpg.Pool) -> JobService:
    settings = Settings.model_validate({"env": "development", "metrics_token": None, "operator_token": None})
    # create() never calls KIE; the client only has to exist.
    kie = KieClient("http://127.0.0.1:9", KieClientConfig(read_timeout_s=1))
    return JobService(pool, Ledger(pool), kie, REGISTRY, settings, notifier=None)  # type: ignore[arg-type]


async def _tenant(pool: asyncpg.Pool, limits: ShopLimits) -> TenantConfig:
    (config,) = await add_bare_tenants(pool, f"lim{secrets.token_hex(3)}", 1, first_bot_id=next(_bots))
    await pool.execute(
        "UPDATE tenants SET free_daily = $2, max_open_jobs = $3, rate_limit_per_minute = $4, timezone = $5 "
        "WHERE id = $1",
        config.id,
        limits.free_daily,
        limits.max_open_jobs,
        limits.rate_per_minute,
        limits.timezone,
    )
    return dataclasses.replace(config, limits=limits)


async def _create(service: JobService, tenant: TenantConfig, user: int, spec: ModelSpec, price: int) -> Any:
    params = FREE_PARAMS if spec.free else PAID_PARAMS
    return await service.create(
        tenant,
        user_id=user,
        chat_id=user,
        spec=spec,
        params=params,
        price=price,
        idempotency_key=f"draft:{secrets.token_hex(6)}",
        language="ru",
        correlation_id="test",
    )


async def _fund(pool: asyncpg.Pool, tenant: TenantConfig, user: int, amount: int) -> None:
    await Ledger(pool).credit(
        tenant.id, user, amount, kind="admin_credit", unique_key=f"fund:{user}", actor="admin:1", reason="test"
    )


async def _jobs(pool: asyncpg.Pool, tenant: TenantConfig, user: int) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM jobs WHERE tenant_id = $1 AND user_id = $2", tenant.id, user))


async def test_the_sixth_free_generation_is_refused_with_the_reset_time_and_paid_ones_still_work(
    pool: asyncpg.Pool,
) -> None:
    tenant = await _tenant(pool, ShopLimits(free_daily=5, max_open_jobs=100))
    service, user = _service(pool), next(_users)
    for _ in range(5):
        await _create(service, tenant, user, FREE, 0)
    assert (await free_allowance(pool, tenant.id, tenant.limits, user)).left_today == 0
    with pytest.raises(FreeQuotaUsed) as refused:
        await _create(service, tenant, user, FREE, 0)
    allowance = refused.value.allowance
    assert (allowance.used_today, allowance.daily_limit) == (5, 5)
    assert allowance.reset_at == "00:00" and allowance.timezone == "Europe/Moscow"
    assert 0 < allowance.resets_in_s <= 24 * 3600
    assert await _jobs(pool, tenant, user) == 5, "the refused job was not written"
    await _fund(pool, tenant, user, 10_000)
    job, created = await _create(service, tenant, user, PAID, 320)
    assert created and job.hold_id is not None, "a paid model is not limited by the free quota"


async def test_a_failed_free_generation_gives_its_use_back(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool, ShopLimits(free_daily=2, max_open_jobs=100))
    service, user = _service(pool), next(_users)
    first, _ = await _create(service, tenant, user, FREE, 0)
    await _create(service, tenant, user, FREE, 0)
    await pool.execute("UPDATE jobs SET status = $2 WHERE id = $1", first.id, JobStatus.FAILED)
    await _create(service, tenant, user, FREE, 0)
    with pytest.raises(FreeQuotaUsed):
        await _create(service, tenant, user, FREE, 0)


async def test_yesterdays_free_uses_in_the_tenants_zone_do_not_count(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool, ShopLimits(free_daily=1, max_open_jobs=100, timezone="Pacific/Kiritimati"))
    service, user = _service(pool), next(_users)
    job, _ = await _create(service, tenant, user, FREE, 0)
    # Moved to just before midnight of the tenant's day (UTC+14): yesterday there, whatever UTC says.
    await pool.execute(
        "UPDATE jobs SET created_at = timezone('Pacific/Kiritimati', date_trunc('day', timezone("
        "'Pacific/Kiritimati', now()))) - interval '1 second' WHERE id = $1",
        job.id,
    )
    await _create(service, tenant, user, FREE, 0)
    allowance = await free_allowance(pool, tenant.id, tenant.limits, user)
    assert allowance.used_today == 1 and allowance.timezone == "Pacific/Kiritimati"


async def test_zero_free_daily_refuses_every_free_generation(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool, ShopLimits(free_daily=0))
    with pytest.raises(FreeQuotaUsed) as refused:
        await _create(_service(pool), tenant, next(_users), FREE, 0)
    assert refused.value.allowance.daily_limit == 0


async def test_the_fourth_open_generation_is_refused_and_nothing_is_held(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool, ShopLimits(max_open_jobs=3))
    service, user = _service(pool), next(_users)
    await _fund(pool, tenant, user, 10_000)
    for _ in range(3):
        await _create(service, tenant, user, PAID, 320)
    with pytest.raises(TooManyOpenJobs) as refused:
        await _create(service, tenant, user, PAID, 320)
    assert (refused.value.running, refused.value.limit) == (3, 3)
    balance = await Ledger(pool).balance(tenant.id, user)
    assert (balance.available, balance.held) == (10_000 - 3 * 320, 3 * 320), "the refused job held nothing"
    # One finishes: the next one is admitted.
    await pool.execute(
        "UPDATE jobs SET status = $3 WHERE id = (SELECT min(id) FROM jobs WHERE tenant_id = $1 AND user_id = $2)",
        tenant.id,
        user,
        JobStatus.SUCCEEDED,
    )
    _job, created = await _create(service, tenant, user, PAID, 320)
    assert created


async def test_the_same_tap_again_finds_its_job_even_at_the_limit(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool, ShopLimits(max_open_jobs=1, free_daily=1))
    service, user = _service(pool), next(_users)
    params = {"tenant": tenant, "user_id": user, "chat_id": user, "spec": FREE, "params": FREE_PARAMS, "price": 0}
    common = {"idempotency_key": "draft:same", "language": "ru", "correlation_id": "c"}
    first, created = await service.create(**params, **common)  # type: ignore[arg-type]
    again, created_again = await service.create(**params, **common)  # type: ignore[arg-type]
    assert created and not created_again and again.id == first.id


async def test_concurrent_taps_on_two_replicas_never_pass_the_limits(
    pool: asyncpg.Pool, second_pool: asyncpg.Pool
) -> None:
    tenant = await _tenant(pool, ShopLimits(max_open_jobs=3, free_daily=2))
    services = [_service(pool), _service(second_pool)]
    paid_user, free_user = next(_users), next(_users)
    await _fund(pool, tenant, paid_user, 100_000)

    async def tap(i: int, user: int, spec: ModelSpec, price: int) -> bool:
        try:
            await _create(services[i % 2], tenant, user, spec, price)
        except (TooManyOpenJobs, FreeQuotaUsed):
            return False
        return True

    paid = await asyncio.gather(*(tap(i, paid_user, PAID, 320) for i in range(12)))
    free = await asyncio.gather(*(tap(i, free_user, FREE, 0) for i in range(12)))
    assert sum(paid) == 3 and await _jobs(pool, tenant, paid_user) == 3
    assert sum(free) == 2 and await _jobs(pool, tenant, free_user) == 2
    balance = await Ledger(pool).balance(tenant.id, paid_user)
    assert balance.held == 3 * 320
    assert await Ledger(pool).reconcile(tenant.id) == []


# --- messages and taps per minute ----------------------------------------------------------------------


async def test_a_hundred_hits_allow_the_limit_then_one_notice_then_silence(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool, ShopLimits(rate_per_minute=30))
    user = next(_users)
    verdicts = [await count_hit(pool, tenant.id, user, 30) for _ in range(100)]
    assert verdicts.count(RateVerdict.ALLOW) == 30
    assert verdicts.count(RateVerdict.NOTICE) == 1 and verdicts[30] is RateVerdict.NOTICE
    assert verdicts.count(RateVerdict.SILENT) == 69


async def test_two_replicas_counting_at_once_send_exactly_one_notice(
    pool: asyncpg.Pool, second_pool: asyncpg.Pool
) -> None:
    tenant = await _tenant(pool, ShopLimits(rate_per_minute=10))
    user = next(_users)
    verdicts = await asyncio.gather(*(count_hit((pool, second_pool)[i % 2], tenant.id, user, 10) for i in range(60)))
    assert verdicts.count(RateVerdict.ALLOW) == 10
    assert verdicts.count(RateVerdict.NOTICE) == 1


async def test_a_new_window_starts_after_a_minute(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool, ShopLimits(rate_per_minute=2))
    user = next(_users)
    assert [await count_hit(pool, tenant.id, user, 2) for _ in range(4)] == [
        RateVerdict.ALLOW,
        RateVerdict.ALLOW,
        RateVerdict.NOTICE,
        RateVerdict.SILENT,
    ]
    await pool.execute(
        "UPDATE rate_windows SET started_at = now() - interval '61 seconds' WHERE tenant_id = $1 AND user_id = $2",
        tenant.id,
        user,
    )
    assert await count_hit(pool, tenant.id, user, 2) is RateVerdict.ALLOW
    assert (
        await pool.fetchval("SELECT hits FROM rate_windows WHERE tenant_id = $1 AND user_id = $2", tenant.id, user) == 1
    )
