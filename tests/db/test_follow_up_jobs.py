"""A paid follow-up is a job of its own: its own price and hold, its own task at KIE naming the parent
task and the chosen image, committed once; the parent job's money is never touched.

Against real Postgres and the fake KIE over HTTP, with Midjourney's upscale priced in a registry of
the test's own (KIE documents no price for it, so the shipped registry does not sell it).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from sandbox.kie import FakeKie, FakeKieConfig
from shared.registry import ModelSpec, PriceMode, Registry, load_registry
from shared.settings import Settings
from tenant_runtime.billing.job_money import JobMoney, MoneyState
from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.billing.quotes import quote
from tenant_runtime.config import TenantConfig
from tenant_runtime.generation.follow_ups import follow_up_params
from tenant_runtime.generation.job import Job, JobStatus
from tenant_runtime.generation.jobs import JobService
from tenant_runtime.generation.poller import JobPoller
from tenant_runtime.kie.client import KieClient, KieClientConfig
from tenant_runtime.kie.families.midjourney import GENERATE, UPSCALE
from tests.helpers import add_bare_tenants, wait_until

START = 100_000
RATE = Decimal(40)


@dataclasses.dataclass
class Tenant:
    config: TenantConfig
    bot: Any = None


class Told:
    def __init__(self) -> None:
        self.results: list[tuple[Job, JobMoney]] = []

    async def progress(self, tenant: Any, job: Job, spec: ModelSpec | None) -> None:
        return None

    async def delivered(self, tenant: Any, job: Job, spec: ModelSpec | None, money: JobMoney) -> None:
        self.results.append((job, money))

    async def failed(self, tenant: Any, job: Job, spec: ModelSpec | None, money: JobMoney) -> None:
        raise AssertionError(f"job {job.id} failed: {job.fail_reason}")

    async def alert_admins(self, tenant: Any, key: str) -> None:
        return None


def _priced_registry() -> Registry:
    shipped = load_registry()
    models = [
        m.model_copy(update={"prices": (PriceMode(credits=Decimal(2)),)}) if m.id == UPSCALE else m
        for m in shipped.models
    ]
    return Registry(models, shipped.credit_usd)


@pytest.fixture
async def fake() -> AsyncIterator[FakeKie]:
    kie = FakeKie(FakeKieConfig(durations=(0.1, 0.2)))
    await kie.start()
    yield kie
    await kie.stop()


async def _finished(pool: asyncpg.Pool, poller: JobPoller, tenant: Tenant, job_id: int) -> Job:
    async def done() -> bool:
        await poller.poll_once({tenant.config.id: tenant})
        status = await pool.fetchval("SELECT status FROM jobs WHERE id = $1", job_id)
        return status in (JobStatus.DELIVERED, JobStatus.FAILED)

    # The first poll is due 3 s after submission (KIE's suggested pace).
    await wait_until(done, timeout=20, interval=0.2, what=f"job {job_id} finished")
    row = await pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
    return Job.from_row(row)


async def test_a_paid_upscale_holds_and_commits_its_own_price_and_leaves_the_parent_alone(
    module_pool: asyncpg.Pool, fake: FakeKie
) -> None:
    pool = module_pool
    (config,) = await add_bare_tenants(pool, "follow", 1, first_bot_id=884_000_000)
    key = "kie_" + secrets.token_hex(8)
    fake.register_key(key, 1000)
    tenant = Tenant(dataclasses.replace(config, kie_api_key=key))
    registry = _priced_registry()
    settings = Settings.model_validate({"env": "development", "metrics_token": None, "operator_token": None})
    told = Told()
    ledger = Ledger(pool)
    user_id = 51
    await ledger.credit(
        config.id, user_id, START, kind="admin_credit", unique_key="fund", actor="admin:1", reason="test funds"
    )
    async with KieClient(fake.base_url, KieClientConfig(read_timeout_s=5)) as kie:
        jobs = JobService(pool, ledger, kie, registry, settings, told)
        poller = JobPoller(jobs)

        async def order(spec: ModelSpec, params: dict[str, object], key: str) -> Job:
            price = quote(spec, params, config.markup, RATE)
            assert price is not None and price > 0
            job, created = await jobs.create(
                config,
                user_id=user_id,
                chat_id=user_id,
                spec=spec,
                params=params,
                price=price,
                idempotency_key=key,
                language="ru",
                correlation_id=key,
            )
            assert created
            await jobs.submit(tenant, job)
            return await _finished(pool, poller, tenant, job.id)

        mj, upscale = registry.get(GENERATE), registry.get(UPSCALE)
        assert mj is not None and upscale is not None
        parent = await order(mj, {"prompt": "four cats", "speed": "turbo"}, "parent")
        assert len(parent.result_urls) == 4
        params = follow_up_params(upscale, parent, 3)
        assert params == {"parent_task": parent.task_id, "index": "3"}
        child = await order(upscale, params, "child")
        await jobs.drain(5)

    (sent,) = [t for t in fake.tasks.values() if t.model == "mj.upscale"]
    assert sent.input == {"taskId": parent.task_id, "imageIndex": 2}  # the upscale page counts from 0
    assert child.status == JobStatus.DELIVERED and len(child.result_urls) == 1
    assert child.hold_id is not None and child.hold_id != parent.hold_id
    holds = await pool.fetch(
        "SELECT idempotency_key, amount, status FROM holds WHERE tenant_id = $1 AND user_id = $2 ORDER BY id",
        config.id,
        user_id,
    )
    assert [(h["idempotency_key"], h["amount"], h["status"]) for h in holds] == [
        (f"job:{parent.id}", parent.price, "committed"),
        (f"job:{child.id}", child.price, "committed"),
    ]
    balance = await ledger.balance(config.id, user_id)
    assert (balance.available, balance.held) == (START - parent.price - child.price, 0)
    assert await ledger.reconcile(config.id) == []
    money = {job.id: m for job, m in told.results}
    assert money[child.id].state == MoneyState.CHARGED and money[child.id].amount == child.price
