"""Generation jobs: durable in Postgres, finished exactly once, resumable after any crash.

1. confirm → one transaction: the job row and its hold (`create`);
2. createTask with a callback URL whose token authenticates the job (`submit`);
3. completion by callback or by polling (`generation.poller`), whichever comes first, converges on
   `finish`, which a
   status transition guarded in SQL lets run once: success commits the hold, failure releases it;
4. delivery to the user happens after the money is settled; a crash in between is redelivered by
   the poller, which also resumes every open job of the tenants this process holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any

import asyncpg
from aiogram.exceptions import (
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)

from shared import metrics
from shared.logs import get_logger
from shared.registry import ModelSpec, Registry, to_kie_input
from shared.settings import Settings
from tenant_runtime.billing.job_money import JobMoney, read_job_money
from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.billing.settlement import Settlement, settle_job_hold
from tenant_runtime.config import Language, TenantConfig
from tenant_runtime.generation.callback_token import make_token
from tenant_runtime.generation.job import (
    UNFINISHED,
    FinishWhen,
    Job,
    JobOutcome,
    JobStatus,
    Notifier,
    TenantHandle,
    outcome_of,
    reason_for,
)
from tenant_runtime.generation.job_queries import JobQueries
from tenant_runtime.kie.client import KieClient
from tenant_runtime.kie.errors import KieCallbackError, KieError, KieUncertainError
from tenant_runtime.kie.families import Family, TaskReport, TaskRequest, family_of
from tenant_runtime.limits.job_limits import admit_job

__all__ = ["DELIVERY_LEASE", "MAX_DELIVERY_ATTEMPTS", "UNFINISHED", "Job", "JobService", "JobStatus", "TenantHandle"]

log = get_logger(__name__)

DELIVERY_LEASE = "10 minutes"  # a finished job not delivered by then (its process died) is delivered again
MAX_DELIVERY_ATTEMPTS = 3
DELIVERY_RETRY_SECONDS = 15  # a result Telegram could not take is tried again this soon


class JobService(JobQueries):
    def __init__(
        self,
        pool: asyncpg.Pool,
        ledger: Ledger,
        kie: KieClient,
        registry: Registry,
        settings: Settings,
        notifier: Notifier,
    ) -> None:
        self._pool = pool
        self._ledger = ledger
        self._kie = kie
        self._registry = registry
        self._settings = settings
        self._notifier = notifier
        self._tasks: set[asyncio.Task[None]] = set()

    # What the poller drives the same jobs with.
    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    @property
    def kie(self) -> KieClient:
        return self._kie

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def notifier(self) -> Notifier:
        return self._notifier

    def family(self, model: str) -> Family:
        """The KIE endpoint family that serves `model` (the registry says which)."""
        return family_of(self._registry.get(model))

    # --- create and submit -----------------------------------------------------------------------

    async def create(
        self,
        tenant: TenantConfig,
        *,
        user_id: int,
        chat_id: int,
        spec: ModelSpec,
        params: Mapping[str, Any],
        price: int,
        idempotency_key: str,
        language: Language,
        correlation_id: str,
    ) -> tuple[Job, bool]:
        """The job for this confirm tap and whether it is new. Raises InsufficientFunds or JobLimitReached
        (nothing written)."""
        kie_input = to_kie_input(spec, params)
        timeout = spec.timeout_seconds or self._settings.job_timeout_seconds
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """INSERT INTO jobs (tenant_id, user_id, chat_id, model, params, kie_input, price, idempotency_key,
                       correlation_id, language, deadline_at, kie_credits)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now() + make_interval(secs => $11), $12)
                   ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING *""",
                tenant.id,
                user_id,
                chat_id,
                spec.id,
                dict(params),
                kie_input,
                price,
                idempotency_key,
                correlation_id,
                language,
                timeout,
                spec.price_credits(params),
            )
            if row is None:
                existing = await conn.fetchrow(
                    "SELECT * FROM jobs WHERE tenant_id = $1 AND idempotency_key = $2", tenant.id, idempotency_key
                )
                return Job.from_row(existing), False
            await admit_job(conn, tenant.id, tenant.limits, user_id, row["id"], free=price == 0)
            if price > 0:
                row = await self._hold_price(conn, tenant.id, row["id"], user_id, price, correlation_id, timeout)
        job = Job.from_row(row)
        log.info(
            "job created",
            job_id=job.id,
            model=job.model,
            price=job.price,
            correlation_id=correlation_id,
            tenant=tenant.slug,
            input_keys=sorted(kie_input),
        )
        return job, True

    async def _hold_price(
        self,
        conn: asyncpg.Connection,
        tenant_id: int,
        job_id: int,
        user_id: int,
        price: int,
        correlation_id: str,
        timeout: int,
    ) -> asyncpg.Record:
        """Reserve a new job's price in the job's transaction; the hold outlives the job's deadline."""
        hold = await self._ledger.reserve(
            tenant_id,
            user_id,
            price,
            f"job:{job_id}",
            correlation_id=correlation_id,
            actor=f"user:{user_id}",
            ttl_seconds=max(self._settings.hold_ttl_seconds, timeout * 2),
            conn=conn,
        )
        return await conn.fetchrow("UPDATE jobs SET hold_id = $2 WHERE id = $1 RETURNING *", job_id, hold.id)

    def callback_url(self, tenant: TenantConfig, job_id: int) -> str | None:
        base = self._settings.public_base_url
        if not base:
            return None
        return f"{base}/kie/callback/{tenant.slug}/{make_token(tenant.callback_secret, tenant.id, job_id)}"

    async def submit(self, tenant: TenantHandle, job: Job) -> None:
        config = tenant.config
        bound = log.bind(tenant=config.slug, job_id=job.id, correlation_id=job.correlation_id)
        if not config.kie_api_key:
            await self.finish(tenant, job.id, JobOutcome(ok=False, reason="unavailable", detail="no KIE key"))
            return
        # Claim the job first: a second submit (a repeated tap, a resumed job) or a refund by the
        # poller can then never race this createTask into a task nobody waits for.
        claimed = await self._pool.fetchval(
            "UPDATE jobs SET kie_state = 'submitting' WHERE id = $1 AND tenant_id = $2 AND status = 'created' "
            "AND kie_state IS NULL RETURNING id",
            job.id,
            config.id,
        )
        if claimed is None:
            return
        family = self.family(job.model)
        request = TaskRequest(job.model, job.kie_input, self.callback_url(config, job.id))
        try:
            task_id = await family.create(self._kie, config.kie_api_key, request)
        except KieUncertainError:
            # KIE may or may not have the task: its callback (the URL names the job) or the deadline decides.
            bound.warning("createTask outcome unknown; waiting for a callback or the deadline")
            return
        except KieError as exc:
            reason = reason_for(exc)
            bound.warning("createTask failed", code=exc.code, reason=reason)
            if reason == "unavailable":
                await self._notifier.alert_admins(tenant, "alert.kie_credits" if exc.code == 402 else "alert.kie_auth")
            await self.finish(tenant, job.id, JobOutcome(ok=False, reason=reason, detail=f"createTask code {exc.code}"))
            return
        submitted = await self._pool.fetchrow(
            """UPDATE jobs SET status = 'submitted', task_id = $3, submitted_at = now(),
                   next_poll_at = now() + interval '3 seconds'
               WHERE id = $1 AND tenant_id = $2 AND status = 'created' AND task_id IS NULL RETURNING id""",
            job.id,
            config.id,
            task_id,
        )
        bound.info("job submitted", task_id=task_id, stored=submitted is not None)
        orphan = await self._pool.fetchval(
            "DELETE FROM kie_orphan_callbacks WHERE task_id = $1 AND tenant_id = $2 RETURNING body", task_id, config.id
        )
        if orphan is not None:
            bound.info("matched an early callback", task_id=task_id)
            try:
                report = family.parse_callback(orphan)
            except KieCallbackError as exc:
                bound.warning("an early callback could not be read; polling decides", error=str(exc))
                return
            await self.apply_callback(tenant, job.id, report, family)

    # --- completion ---------------------------------------------------------------------------------

    async def apply_callback(self, tenant: TenantHandle, job_id: int, report: TaskReport, family: Family) -> None:
        """A task's end as KIE reported it (callback, or one kept from before the task id was known).
        Progress callbacks (Suno's "text" and "first") change nothing."""
        if not report.is_final:
            return
        # A callback can beat createTask's reply: take the task id from it.
        await self._pool.execute(
            "UPDATE jobs SET task_id = $3, status = 'submitted', submitted_at = coalesce(submitted_at, now()) "
            "WHERE id = $1 AND tenant_id = $2 AND task_id IS NULL AND status = 'created'",
            job_id,
            tenant.config.id,
            report.task_id,
        )
        self.spawn(self.finish(tenant, job_id, outcome_of(report, family)))

    async def finish(
        self, tenant: TenantHandle, job_id: int, outcome: JobOutcome, when: FinishWhen = FinishWhen.UNFINISHED
    ) -> None:
        """Settle the money and tell the user, at most once per job whoever calls it."""
        tenant_id = tenant.config.id
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""UPDATE jobs SET status = $3, finished_at = now(), result_urls = $4, result_text = $5,
                           fail_reason = $6, fail_detail = $7, next_poll_at = now() + interval '{DELIVERY_LEASE}'
                       WHERE id = $1 AND tenant_id = $2 AND {when.value} RETURNING *""",
                job_id,
                tenant_id,
                JobStatus.SUCCEEDED if outcome.ok else JobStatus.FAILED,
                list(outcome.result_urls),
                outcome.result_text,
                outcome.reason,
                outcome.detail,
            )
            if row is None:
                return  # already finished by the other path or the other process
            job = Job.from_row(row)
            if job.hold_id is not None:
                await self._settle(conn, tenant, job, outcome.ok)
            # Read back in the same transaction: what the user is told is what was just written.
            money = await self.money(job, conn)
        slug = tenant.config.slug
        bound = log.bind(tenant=slug, job_id=job.id, correlation_id=job.correlation_id)
        spec = self._registry.get(job.model)
        if outcome.ok:
            metrics.GENERATIONS.labels(slug, "success").inc()
            bound.info("job succeeded", price=job.price, money=money.state, results=len(job.result_urls))
            await self.deliver(tenant, job, spec, money)
        else:
            metrics.GENERATIONS.labels(slug, "failed").inc()
            if job.hold_id is not None:
                metrics.REFUNDS.labels(slug).inc()
            bound.info("job failed; hold released", reason=outcome.reason, detail=outcome.detail, price=job.price)
            await self.deliver(tenant, job, spec, money)

    async def _settle(self, conn: asyncpg.Connection, tenant: TenantHandle, job: Job, ok: bool) -> None:
        """Commit the job's hold on success, release it on failure; a result that arrives after the hold
        expired follows the late-result rule (`billing.settlement`)."""
        assert job.hold_id is not None
        settled = await settle_job_hold(
            self._ledger,
            conn,
            tenant.config.id,
            job_id=job.id,
            user_id=job.user_id,
            hold_id=job.hold_id,
            price=job.price,
            ok=ok,
            correlation_id=job.correlation_id,
        )
        if settled in (Settlement.COMMITTED, Settlement.RELEASED):
            return
        bound = log.bind(tenant=tenant.config.slug, job_id=job.id, hold_id=job.hold_id, price=job.price)
        if settled == Settlement.LATE_UNPAID:
            bound.error("late result after the hold expired: balance short, delivered unpaid")
        else:
            bound.warning("outcome after the job's hold expired", settlement=settled)

    async def money(self, job: Job, conn: asyncpg.Pool | asyncpg.Connection | None = None) -> JobMoney:
        """The ledger state of the job's money and its user's balance, for every message about them."""
        return await read_job_money(
            conn or self._pool,
            job.tenant_id,
            job.user_id,
            job.id,
            succeeded=job.status in (JobStatus.SUCCEEDED, JobStatus.DELIVERED),
            currency=self._settings.currency_code,
        )

    async def deliver(
        self, tenant: TenantHandle, job: Job, spec: ModelSpec | None, money: JobMoney | None = None
    ) -> None:
        """Tell the user how the job ended (its result, or its failure and the money returned), then
        record that they were told; until then the tenant's lock holder tries again."""
        told = money or await self.money(job)
        try:
            if job.status == JobStatus.FAILED:
                await self._notifier.failed(tenant, job, spec, told)
            else:
                await self._notifier.delivered(tenant, job, spec, told)
        except (TelegramNetworkError, TelegramServerError, TelegramRetryAfter, TelegramUnauthorizedError) as exc:
            # Telegram out of reach from here, or the bot's token revoked: the message waits a little, for
            # whoever holds the tenant then (the lock moves off a process that cannot reach Telegram; a
            # rotated token brings a new runtime, a revoked one stops the poller); the try does not count.
            log.warning(
                "outcome not told: Telegram unreachable; retrying soon", job_id=job.id, error=type(exc).__name__
            )
            await self._pool.execute(
                "UPDATE jobs SET next_poll_at = now() + make_interval(secs => $2), "
                "delivery_attempts = greatest(delivery_attempts - 1, 0) WHERE id = $1",
                job.id,
                DELIVERY_RETRY_SECONDS,
            )
            return
        await self.mark_delivered(job.id)

    async def mark_delivered(self, job_id: int) -> None:
        """The user has been told: a success becomes 'delivered'; a failure gets its told_at."""
        await self._pool.execute(
            """UPDATE jobs SET status = CASE WHEN status = 'succeeded' THEN 'delivered' ELSE status END,
                   delivered_at = CASE WHEN status = 'succeeded' THEN now() ELSE delivered_at END,
                   told_at = CASE WHEN status = 'failed' THEN now() ELSE told_at END
               WHERE id = $1 AND (status = 'succeeded' OR (status = 'failed' AND told_at IS NULL))""",
            job_id,
        )

    # --- tasks -----------------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("job task failed", error=repr(task.exception()))

    async def drain(self, timeout: float) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
