"""Generation jobs: durable in Postgres, finished exactly once, resumable after any crash.

1. confirm → one transaction: the job row and its hold (`create`);
2. createTask with a callback URL whose token authenticates the job (`submit`);
3. completion by callback or by polling, whichever comes first, converges on `_finish`, which a
   status transition guarded in SQL lets run once: success commits the hold, failure releases it;
4. delivery to the user happens after the money is settled; a crash in between is redelivered by
   the poller, which also resumes every open job of the tenants this process holds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg
from aiogram import Bot

from shared import metrics
from shared.logs import get_logger
from shared.registry import ModelSpec, Registry, to_kie_input
from shared.settings import Settings
from tenant_runtime.callback_token import make_token, read_token
from tenant_runtime.config import Language, TenantConfig
from tenant_runtime.kie_client import (
    CallbackPayload,
    KieAuthError,
    KieCallbackError,
    KieCircuitOpenError,
    KieClient,
    KieError,
    KieInsufficientCreditsError,
    KieTransportError,
    KieUncertainError,
    KieValidationError,
    TaskInfo,
    parse_callback,
    verify_signature,
)
from tenant_runtime.ledger import Ledger

log = get_logger(__name__)

OPEN_STATUSES = ("created", "submitted", "succeeded")
UNSUBMITTED_GRACE_S = 90  # a job never submitted (crash, uncertain createTask) is refunded after this
DELIVERY_LEASE = "10 minutes"  # a finished job not delivered by then (its process died) is delivered again
MAX_DELIVERY_ATTEMPTS = 3


class TenantHandle(Protocol):
    """What the job service needs of a tenant runtime."""

    config: TenantConfig
    bot: Bot


@dataclass(frozen=True)
class Job:
    id: int
    tenant_id: int
    user_id: int
    chat_id: int
    model: str
    params: dict[str, Any]
    kie_input: dict[str, Any]
    price: int
    hold_id: int | None
    correlation_id: str
    language: Language
    status: str
    task_id: str | None
    kie_state: str | None
    result_urls: list[str]
    result_text: str | None
    fail_reason: str | None
    progress_message_id: int | None
    created_at: datetime
    submitted_at: datetime | None
    finished_at: datetime | None
    deadline_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Job:
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            user_id=row["user_id"],
            chat_id=row["chat_id"],
            model=row["model"],
            params=dict(row["params"]),
            kie_input=dict(row["kie_input"]),
            price=row["price"],
            hold_id=row["hold_id"],
            correlation_id=row["correlation_id"],
            language=row["language"],
            status=row["status"],
            task_id=row["task_id"],
            kie_state=row["kie_state"],
            result_urls=list(row["result_urls"] or []),
            result_text=row["result_text"],
            fail_reason=row["fail_reason"],
            progress_message_id=row["progress_message_id"],
            created_at=row["created_at"],
            submitted_at=row["submitted_at"],
            finished_at=row["finished_at"],
            deadline_at=row["deadline_at"],
        )


@dataclass(frozen=True)
class DayCounts:
    succeeded: int
    failed: int
    open: int


@dataclass(frozen=True)
class Outcome:
    """How a job ended. `reason` is a text-catalog key suffix (fail.<reason>) for failures."""

    ok: bool
    result_urls: tuple[str, ...] = ()
    result_text: str | None = None
    reason: str | None = None
    detail: str | None = None


class Notifier(Protocol):
    """Tells the user about their job (implemented by the delivery module)."""

    async def progress(self, tenant: TenantHandle, job: Job, spec: ModelSpec | None) -> None: ...

    async def delivered(self, tenant: TenantHandle, job: Job, spec: ModelSpec | None) -> None: ...

    async def failed(self, tenant: TenantHandle, job: Job, spec: ModelSpec | None) -> None: ...

    async def alert_admins(self, tenant: TenantHandle, key: str) -> None: ...


def reason_for(exc: KieError) -> str:
    if isinstance(exc, KieCircuitOpenError | KieTransportError):
        return "busy"
    if isinstance(exc, KieInsufficientCreditsError | KieAuthError):
        return "unavailable"
    if isinstance(exc, KieValidationError):
        return "invalid"
    if exc.code in (429, 455) or exc.code >= 500:
        return "busy"
    return "provider"


def reason_for_task(info: TaskInfo) -> str:
    text = f"{info.fail_code or ''} {info.fail_msg or ''}".lower()
    if any(word in text for word in ("policy", "nsfw", "sensitive", "moderation", "safety", "prohibited")):
        return "content"
    return "provider"


class JobService:
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
        self._semaphore = asyncio.Semaphore(32)

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
        """The job for this confirm tap and whether it is new. Raises InsufficientFunds (nothing written)."""
        kie_input = to_kie_input(spec, params)
        timeout = spec.timeout_seconds or self._settings.job_timeout_seconds
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """INSERT INTO jobs (tenant_id, user_id, chat_id, model, params, kie_input, price, idempotency_key,
                       correlation_id, language, deadline_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now() + make_interval(secs => $11))
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
            )
            if row is None:
                existing = await conn.fetchrow(
                    "SELECT * FROM jobs WHERE tenant_id = $1 AND idempotency_key = $2", tenant.id, idempotency_key
                )
                return Job.from_row(existing), False
            if price > 0:
                hold = await self._ledger.reserve(
                    tenant.id,
                    user_id,
                    price,
                    f"job:{row['id']}",
                    correlation_id=correlation_id,
                    actor=f"user:{user_id}",
                    ttl_seconds=max(self._settings.hold_ttl_seconds, timeout * 2),
                    conn=conn,
                )
                row = await conn.fetchrow("UPDATE jobs SET hold_id = $2 WHERE id = $1 RETURNING *", row["id"], hold.id)
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

    def callback_url(self, tenant: TenantConfig, job_id: int) -> str | None:
        base = self._settings.public_base_url
        if not base:
            return None
        return f"{base}/kie/callback/{tenant.slug}/{make_token(tenant.callback_secret, tenant.id, job_id)}"

    async def submit(self, tenant: TenantHandle, job: Job) -> None:
        config = tenant.config
        bound = log.bind(tenant=config.slug, job_id=job.id, correlation_id=job.correlation_id)
        if not config.kie_api_key:
            await self._finish(tenant, job.id, Outcome(ok=False, reason="unavailable", detail="no KIE key"))
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
        try:
            task_id = await self._kie.create_task(
                config.kie_api_key, job.model, job.kie_input, self.callback_url(config, job.id)
            )
        except KieUncertainError:
            # KIE may or may not have the task: its callback (the URL names the job) or the deadline decides.
            bound.warning("createTask outcome unknown; waiting for a callback or the deadline")
            return
        except KieError as exc:
            reason = reason_for(exc)
            bound.warning("createTask failed", code=exc.code, reason=reason)
            if reason == "unavailable":
                await self._notifier.alert_admins(tenant, "alert.kie_credits" if exc.code == 402 else "alert.kie_auth")
            await self._finish(tenant, job.id, Outcome(ok=False, reason=reason, detail=f"createTask code {exc.code}"))
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
            await self._apply_callback(tenant, job.id, parse_callback(json.dumps(orphan).encode()))

    # --- completion ---------------------------------------------------------------------------------

    async def handle_callback(self, tenant: TenantHandle, token: str, body: bytes, headers: Mapping[str, str]) -> int:
        """HTTP status for KIE. Forged or foreign callbacks change nothing."""
        config = tenant.config
        job_id = read_token(config.callback_secret, config.id, token)
        if job_id is None:
            log.warning("callback rejected: bad token", tenant=config.slug)
            return 401
        try:
            payload = parse_callback(body)
        except KieCallbackError:
            return 400
        if config.kie_webhook_key:
            stamp, signature = headers.get("X-Webhook-Timestamp"), headers.get("X-Webhook-Signature")
            if (
                not stamp
                or not signature
                or not verify_signature(payload.task_id, stamp, signature, config.kie_webhook_key)
            ):
                log.warning("callback rejected: bad KIE signature", tenant=config.slug, job_id=job_id)
                return 401
        row = await self._pool.fetchrow(
            "SELECT id, task_id FROM jobs WHERE id = $1 AND tenant_id = $2", job_id, config.id
        )
        if row is None:
            await self._pool.execute(
                "INSERT INTO kie_orphan_callbacks (task_id, tenant_id, body) VALUES ($1, $2, $3) "
                "ON CONFLICT (task_id) DO NOTHING",
                payload.task_id,
                config.id,
                json.loads(body),
            )
            log.info("orphan callback stored", tenant=config.slug, task_id=payload.task_id)
            return 200
        if row["task_id"] is not None and row["task_id"] != payload.task_id:
            log.warning("callback rejected: task does not belong to the job", tenant=config.slug, job_id=job_id)
            return 409
        log.info("callback received", tenant=config.slug, job_id=job_id, task_id=payload.task_id, state=payload.state)
        await self._apply_callback(tenant, job_id, payload)
        return 200

    async def _apply_callback(self, tenant: TenantHandle, job_id: int, payload: CallbackPayload) -> None:
        if payload.state not in ("success", "fail"):
            return
        # A callback can beat createTask's reply: take the task id from it.
        await self._pool.execute(
            "UPDATE jobs SET task_id = $3, status = 'submitted', submitted_at = coalesce(submitted_at, now()) "
            "WHERE id = $1 AND tenant_id = $2 AND task_id IS NULL AND status = 'created'",
            job_id,
            tenant.config.id,
            payload.task_id,
        )
        self.spawn(self._finish(tenant, job_id, _outcome(payload.task)))

    async def _finish(self, tenant: TenantHandle, job_id: int, outcome: Outcome) -> None:
        """Settle the money and tell the user, at most once per job whoever calls it."""
        tenant_id = tenant.config.id
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """UPDATE jobs SET status = $3, finished_at = now(), result_urls = $4, result_text = $5,
                           fail_reason = $6, fail_detail = $7, next_poll_at = now() + interval '10 minutes'
                       WHERE id = $1 AND tenant_id = $2 AND status IN ('created', 'submitted') RETURNING *""",
                job_id,
                tenant_id,
                "succeeded" if outcome.ok else "failed",
                list(outcome.result_urls),
                outcome.result_text,
                outcome.reason,
                outcome.detail,
            )
            if row is None:
                return  # already finished by the other path or the other process
            job = Job.from_row(row)
            if job.hold_id is not None:
                settle = self._ledger.commit if outcome.ok else self._ledger.release
                if not await settle(tenant_id, job.hold_id, conn=conn):
                    # Only the hold sweeper resolves a hold behind a job's back (it expired).
                    log.error(
                        "job hold was already resolved",
                        tenant=tenant.config.slug,
                        job_id=job.id,
                        hold_id=job.hold_id,
                        ok=outcome.ok,
                    )
        slug = tenant.config.slug
        bound = log.bind(tenant=slug, job_id=job.id, correlation_id=job.correlation_id)
        spec = self._registry.get(job.model)
        if outcome.ok:
            metrics.GENERATIONS.labels(slug, "success").inc()
            bound.info("job succeeded; hold committed", price=job.price, results=len(job.result_urls))
            await self._deliver(tenant, job, spec)
        else:
            metrics.GENERATIONS.labels(slug, "failed").inc()
            if job.hold_id is not None:
                metrics.REFUNDS.labels(slug).inc()
            bound.info("job failed; hold released", reason=outcome.reason, detail=outcome.detail, price=job.price)
            await self._notifier.failed(tenant, job, spec)

    async def _deliver(self, tenant: TenantHandle, job: Job, spec: ModelSpec | None) -> None:
        await self._notifier.delivered(tenant, job, spec)
        await self._mark_delivered(job.id)

    async def _mark_delivered(self, job_id: int) -> None:
        await self._pool.execute(
            "UPDATE jobs SET status = 'delivered', delivered_at = now() WHERE id = $1 AND status = 'succeeded'", job_id
        )

    # --- polling and resuming ------------------------------------------------------------------------

    async def run_poller(self, tenants: Callable[[], Mapping[int, TenantHandle]], interval: float = 1.0) -> None:
        """Drive every open job of the tenants this process holds (one query per tick, whatever their number)."""
        while True:
            try:
                await self._poll_once(tenants())
            except Exception:  # the poller must outlive any one bad tick: every open job depends on it
                log.exception("job poller tick failed")
            await asyncio.sleep(interval)

    async def _poll_once(self, held: Mapping[int, TenantHandle]) -> None:
        if not held:
            return
        # Each due job is leased for a minute while its tick runs, so a slow tick is never started twice.
        rows = await self._pool.fetch(
            """UPDATE jobs SET next_poll_at = now() + interval '60 seconds'
               WHERE id IN (SELECT id FROM jobs WHERE tenant_id = ANY($1::bigint[]) AND status = ANY($2::text[])
                            AND next_poll_at <= now() ORDER BY next_poll_at LIMIT 200 FOR UPDATE SKIP LOCKED)
               RETURNING *""",
            list(held),
            list(OPEN_STATUSES),
        )
        for row in rows:
            job = Job.from_row(row)
            tenant = held.get(job.tenant_id)
            if tenant is not None:
                self.spawn(self._bounded(self._tick(tenant, job)))

    async def _bounded(self, coro: Coroutine[Any, Any, None]) -> None:
        async with self._semaphore:
            await coro

    async def _tick(self, tenant: TenantHandle, job: Job) -> None:
        now = datetime.now(UTC)
        bound = log.bind(tenant=tenant.config.slug, job_id=job.id, correlation_id=job.correlation_id)
        if job.status == "succeeded":
            # Its delivery lease ran out: the process delivering it died. Try again, a few times.
            attempts = await self._pool.fetchval(
                f"UPDATE jobs SET delivery_attempts = delivery_attempts + 1, "
                f"next_poll_at = now() + interval '{DELIVERY_LEASE}' WHERE id = $1 RETURNING delivery_attempts",
                job.id,
            )
            if attempts > MAX_DELIVERY_ATTEMPTS:
                bound.error("giving up delivering a result", attempts=attempts)
                await self._mark_delivered(job.id)
                return
            bound.info("redelivering a finished job")
            await self._deliver(tenant, job, self._registry.get(job.model))
            return
        if job.task_id is None:
            # Never claimed (a crash right after confirm): refund soon. Claimed but no task id (createTask's
            # outcome unknown): the task may exist at KIE, so its callback has until the deadline.
            stale = job.kie_state is None and now - job.created_at > timedelta(seconds=UNSUBMITTED_GRACE_S)
            if now >= job.deadline_at or stale:
                reason, detail = ("busy", "never submitted") if stale else ("timeout", "deadline passed")
                await self._finish(tenant, job.id, Outcome(ok=False, reason=reason, detail=detail))
            else:
                await self._schedule(job, now)
            return
        key = tenant.config.kie_api_key
        if not key:
            return
        info: TaskInfo | None = None
        try:
            info = await self._kie.record_info(key, job.task_id)
        except KieError as exc:
            bound.warning("recordInfo failed", code=exc.code)
        if info is not None:
            bound.info("polled", task_id=job.task_id, state=info.state, poll=True)
            if info.is_final:
                await self._finish(tenant, job.id, _outcome(info))
                return
        if now >= job.deadline_at:
            await self._finish(tenant, job.id, Outcome(ok=False, reason="timeout", detail="deadline passed"))
            return
        if info is not None and info.state != job.kie_state:
            await self._pool.execute("UPDATE jobs SET kie_state = $2 WHERE id = $1", job.id, info.state)
            job = Job.from_row(await self._pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job.id))
            await self._notifier.progress(tenant, job, self._registry.get(job.model))
        await self._schedule(job, now)

    async def _schedule(self, job: Job, now: datetime) -> None:
        # KIE's suggestion: every 2-3 s for 30 s, then 5-10 s, then 15-30 s.
        age = (now - (job.submitted_at or job.created_at)).total_seconds()
        delay = 3 if age < 30 else 8 if age < 120 else 20
        await self._pool.execute(
            "UPDATE jobs SET next_poll_at = now() + make_interval(secs => $2), poll_count = poll_count + 1 "
            "WHERE id = $1",
            job.id,
            delay,
        )

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

    async def open_jobs(self, tenant_id: int, user_id: int) -> int:
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND user_id = $2 AND status IN ('created', 'submitted')",
                tenant_id,
                user_id,
            )
        )

    async def started(self, tenant_id: int, idempotency_key: str) -> bool:
        """A job exists for this confirm screen (the user tapped Generate before)."""
        found = await self._pool.fetchval(
            "SELECT 1 FROM jobs WHERE tenant_id = $1 AND idempotency_key = $2", tenant_id, idempotency_key
        )
        return found is not None

    async def count_for_user(self, tenant_id: int, user_id: int) -> int:
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id
            )
        )

    async def today(self, tenant_id: int) -> DayCounts:
        """Today's (UTC) jobs of a tenant by outcome."""
        row = await self._pool.fetchrow(
            """SELECT count(*) FILTER (WHERE status IN ('succeeded', 'delivered')) AS succeeded,
                      count(*) FILTER (WHERE status = 'failed') AS failed,
                      count(*) FILTER (WHERE status IN ('created', 'submitted')) AS open
               FROM jobs WHERE tenant_id = $1 AND created_at >= date_trunc('day', now())""",
            tenant_id,
        )
        return DayCounts(row["succeeded"], row["failed"], row["open"])

    async def get(self, tenant_id: int, job_id: int) -> Job | None:
        row = await self._pool.fetchrow("SELECT * FROM jobs WHERE id = $1 AND tenant_id = $2", job_id, tenant_id)
        return None if row is None else Job.from_row(row)

    async def set_progress_message(self, job_id: int, message_id: int) -> None:
        await self._pool.execute("UPDATE jobs SET progress_message_id = $2 WHERE id = $1", job_id, message_id)

    async def recent(self, tenant_id: int, user_id: int, limit: int, offset: int) -> list[Job]:
        rows = await self._pool.fetch(
            "SELECT * FROM jobs WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at DESC LIMIT $3 OFFSET $4",
            tenant_id,
            user_id,
            limit,
            offset,
        )
        return [Job.from_row(r) for r in rows]


def _outcome(info: TaskInfo) -> Outcome:
    if info.state == "success":
        text = None
        if info.result_object is not None:
            text = str(info.result_object.get("text") or info.result_object)
        return Outcome(ok=True, result_urls=tuple(info.result_urls), result_text=text)
    return Outcome(ok=False, reason=reason_for_task(info), detail=f"{info.fail_code}: {info.fail_msg}"[:300])


def elapsed_since(moment: datetime) -> float:
    return max(0.0, time.time() - moment.timestamp())
