"""The job poller against real Postgres and a real (hanging) HTTP server standing in for KIE.

Invariants: never more polls in flight than MAX_POLLS_IN_FLIGHT and never two for one job, however long
KIE hangs; a stale tick never delivers a result twice nor fails a job someone has just moved on; every
time decision is taken on the database's clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import GetMe
from aiohttp import web

from shared.registry import ModelSpec, load_registry
from shared.settings import Settings
from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.config import TenantConfig
from tenant_runtime.generation import poller as poller_module
from tenant_runtime.generation.job import Job, JobOutcome, JobStatus
from tenant_runtime.generation.jobs import JobService
from tenant_runtime.generation.poller import MAX_POLLS_IN_FLIGHT, Due, JobPoller
from tenant_runtime.kie.client import KieClient, KieClientConfig
from tests.helpers import add_bare_tenants, serving, wait_until


@dataclasses.dataclass
class Tenant:
    config: TenantConfig
    bot: Any = None


class Notes:
    """The notifier the service is given: what it was asked to tell users."""

    def __init__(self, unreachable: int = 0) -> None:
        self.delivered_jobs: list[int] = []
        self.failed_jobs: list[int] = []
        self.unreachable = unreachable  # this many calls fail as if Telegram were cut off

    async def progress(self, tenant: Any, job: Job, spec: ModelSpec | None) -> None:
        return None

    async def delivered(self, tenant: Any, job: Job, spec: ModelSpec | None, money: Any) -> None:
        self._reach()
        self.delivered_jobs.append(job.id)

    async def failed(self, tenant: Any, job: Job, spec: ModelSpec | None, money: Any) -> None:
        self._reach()
        self.failed_jobs.append(job.id)

    def _reach(self) -> None:
        if self.unreachable:
            self.unreachable -= 1
            raise TelegramNetworkError(GetMe(), "connection refused")

    async def alert_admins(self, tenant: Any, key: str) -> None:
        return None


class HangingKie:
    """recordInfo requests arrive and are never answered (until the test ends)."""

    def __init__(self) -> None:
        self.requests = 0
        self.in_flight = 0
        self.peak = 0
        self.task_ids: list[str] = []
        self._release = asyncio.Event()

    async def record_info(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.task_ids.append(request.query.get("taskId", ""))
        try:
            await self._release.wait()
        finally:
            self.in_flight -= 1
        return web.json_response(
            {"code": 200, "msg": "ok", "data": {"taskId": request.query["taskId"], "state": "waiting"}}
        )

    def release(self) -> None:
        self._release.set()


@pytest.fixture
async def hanging_kie() -> AsyncIterator[tuple[HangingKie, str]]:
    kie = HangingKie()
    app = web.Application()
    app.router.add_get("/api/v1/jobs/recordInfo", kie.record_info)
    async with serving(app) as url:
        try:
            yield kie, url
        finally:
            kie.release()


async def _service(pool: asyncpg.Pool, kie_url: str, notifier: Any) -> tuple[JobService, KieClient]:
    settings = Settings.model_validate({"env": "development", "metrics_token": None, "operator_token": None})
    kie = KieClient(kie_url, KieClientConfig(read_timeout_s=60))
    return JobService(pool, Ledger(pool), kie, load_registry(), settings, notifier), kie


async def _tenant(pool: asyncpg.Pool, prefix: str, bot_id: int) -> Tenant:
    (config,) = await add_bare_tenants(pool, prefix, 1, first_bot_id=bot_id)
    return Tenant(dataclasses.replace(config, kie_api_key="kie_" + secrets.token_hex(8)))


async def _job(pool: asyncpg.Pool, tenant_id: int, *, status: JobStatus, task_id: str | None, **extra: Any) -> int:
    sets = ", ".join(f"{k} = {v}" for k, v in extra.items())
    job_id = await pool.fetchval(
        """INSERT INTO jobs (tenant_id, user_id, chat_id, model, params, kie_input, price, idempotency_key,
               correlation_id, language, deadline_at, status, task_id, next_poll_at)
           VALUES ($1, 1, 1, 'z-image', '{}', '{}', 0, $2, 'c', 'ru', now() + interval '1 hour', $3, $4, now())
           RETURNING id""",
        tenant_id,
        secrets.token_hex(8),
        status,
        task_id,
    )
    if sets:
        await pool.execute(f"UPDATE jobs SET {sets} WHERE id = $1", job_id)
    return int(job_id)


async def _due(pool: asyncpg.Pool, job_id: int, *, past_deadline: bool = False, never_submitted: bool = False) -> Due:
    row = await pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
    return Due(Job.from_row(row), past_deadline, never_submitted, 1.0)


async def test_a_hanging_kie_never_piles_up_polls(
    module_pool: asyncpg.Pool, hanging_kie: tuple[HangingKie, str]
) -> None:
    kie_server, url = hanging_kie
    tenant = await _tenant(module_pool, "pollb", 882_000_000)
    service, kie = await _service(module_pool, url, Notes())
    poller = JobPoller(service)
    try:
        for i in range(100):
            await _job(module_pool, tenant.config.id, status=JobStatus.SUBMITTED, task_id=f"t{i}")
        held = {tenant.config.id: tenant}
        for _round in range(5):
            await poller.poll_once(held)  # type: ignore[arg-type]
            assert len(poller._polling) <= MAX_POLLS_IN_FLIGHT
            # The lease runs out while KIE still hangs: the same jobs are due again.
            await module_pool.execute("UPDATE jobs SET next_poll_at = now() WHERE tenant_id = $1", tenant.config.id)
        await asyncio.sleep(0.5)  # past the client's rate limiter: every started poll reached the server
        assert len(poller._polling) <= MAX_POLLS_IN_FLIGHT
        assert kie_server.peak <= MAX_POLLS_IN_FLIGHT
        assert len(kie_server.task_ids) == len(set(kie_server.task_ids)), "one job polled twice at once"
    finally:
        kie_server.release()
        await service.drain(timeout=5)
        await kie.aclose()


async def test_a_stale_tick_never_delivers_a_result_twice(module_pool: asyncpg.Pool) -> None:
    tenant = await _tenant(module_pool, "pollr", 882_100_000)
    notes = Notes()
    service, kie = await _service(module_pool, "http://127.0.0.1:9", notes)
    poller = JobPoller(service)
    try:
        job_id = await _job(module_pool, tenant.config.id, status=JobStatus.SUCCEEDED, task_id="t")
        stale = await _due(module_pool, job_id)  # leased while 'succeeded'
        await module_pool.execute("UPDATE jobs SET status = 'delivered', delivered_at = now() WHERE id = $1", job_id)
        await poller._tick(tenant, stale)  # type: ignore[arg-type]
        assert notes.delivered_jobs == []
        attempts = await module_pool.fetchval("SELECT delivery_attempts FROM jobs WHERE id = $1", job_id)
        assert attempts == 0
    finally:
        await kie.aclose()


async def test_a_stale_tick_never_fails_a_job_a_repeated_tap_just_claimed(module_pool: asyncpg.Pool) -> None:
    tenant = await _tenant(module_pool, "pollc", 882_200_000)
    service, kie = await _service(module_pool, "http://127.0.0.1:9", Notes())
    poller = JobPoller(service)
    try:
        job_id = await _job(
            module_pool,
            tenant.config.id,
            status=JobStatus.CREATED,
            task_id=None,
            created_at="now() - interval '5 minutes'",
        )
        stale = await _due(module_pool, job_id, never_submitted=True)
        # Meanwhile the user tapped Generate again: submit claimed the job and is calling createTask.
        await module_pool.execute("UPDATE jobs SET kie_state = 'submitting' WHERE id = $1", job_id)
        await poller._tick(tenant, stale)  # type: ignore[arg-type]
        status = await module_pool.fetchval("SELECT status FROM jobs WHERE id = $1", job_id)
        assert status == JobStatus.CREATED, "the claimed job was failed and refunded by a stale tick"
    finally:
        await kie.aclose()


class _SkewedClock(datetime):
    """The app's clock 200 s ahead of the database's."""

    @classmethod
    def now(cls, tz: Any = None) -> _SkewedClock:  # type: ignore[override]
        real = datetime.now(tz or UTC) + timedelta(seconds=200)
        return cls.fromtimestamp(real.timestamp(), tz or UTC)


async def test_decisions_use_the_database_clock(module_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = await _tenant(module_pool, "pollk", 882_300_000)
    service, kie = await _service(module_pool, "http://127.0.0.1:9", Notes())
    poller = JobPoller(service)
    monkeypatch.setattr(poller_module, "datetime", _SkewedClock, raising=False)
    try:
        fresh = await _job(module_pool, tenant.config.id, status=JobStatus.CREATED, task_id=None)
        await poller.poll_once({tenant.config.id: tenant})  # type: ignore[dict-item]
        await wait_until(lambda: not poller._polling, timeout=5, what="the tick to finish")
        status = await module_pool.fetchval("SELECT status FROM jobs WHERE id = $1", fresh)
        assert status == JobStatus.CREATED, "a fresh job was failed because the app's clock runs ahead"
    finally:
        await kie.aclose()


async def test_a_failure_the_user_could_not_be_told_is_told_later_and_once(module_pool: asyncpg.Pool) -> None:
    tenant = await _tenant(module_pool, "pollf", 882_400_000)
    notes = Notes(unreachable=1)
    service, kie = await _service(module_pool, "http://127.0.0.1:9", notes)
    poller = JobPoller(service)
    try:
        job_id = await _job(module_pool, tenant.config.id, status=JobStatus.SUBMITTED, task_id="tf")
        failure = JobOutcome(ok=False, reason="provider", detail="test")
        await service.finish(tenant, job_id, failure)  # type: ignore[arg-type]
        row = await module_pool.fetchrow(
            "SELECT status, told_at, next_poll_at - now() AS wait FROM jobs WHERE id = $1", job_id
        )
        assert row["status"] == JobStatus.FAILED and row["told_at"] is None, "Telegram was out of reach"
        assert row["wait"].total_seconds() <= 20, "the retry is soon, not after the delivery lease"
        await module_pool.execute("UPDATE jobs SET next_poll_at = now() WHERE id = $1", job_id)
        await poller.poll_once({tenant.config.id: tenant})  # type: ignore[dict-item]
        await wait_until(lambda: notes.failed_jobs == [job_id], timeout=5, what="the failure told")
        await wait_until(lambda: not poller._polling, timeout=5, what="the tick to finish")
        assert await module_pool.fetchval("SELECT told_at FROM jobs WHERE id = $1", job_id) is not None
        # Told: later ticks never tell it again.
        await module_pool.execute("UPDATE jobs SET next_poll_at = now() WHERE id = $1", job_id)
        await poller.poll_once({tenant.config.id: tenant})  # type: ignore[dict-item]
        await asyncio.sleep(0.5)
        assert notes.failed_jobs == [job_id]
    finally:
        await kie.aclose()
