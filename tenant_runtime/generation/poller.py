"""The job poller: drives the open jobs of the tenants this process holds (each job's family status
endpoint, deadlines, redelivery), with at most MAX_POLLS_IN_FLIGHT ticks running and never two for one job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.logs import get_logger
from tenant_runtime.generation.job import (
    POLLED,
    UNFINISHED,
    UNSUBMITTED_GRACE_S,
    FinishWhen,
    Job,
    JobOutcome,
    JobStatus,
    TenantHandle,
    outcome_of,
)
from tenant_runtime.generation.jobs import DELIVERY_LEASE, MAX_DELIVERY_ATTEMPTS, JobService
from tenant_runtime.kie.errors import KieError
from tenant_runtime.kie.families import TaskRef, TaskReport
from tenant_runtime.telegram.fence import ALWAYS_HELD, Lease, owned_work

__all__ = ["MAX_POLLS_IN_FLIGHT", "Due", "JobPoller"]

log = get_logger(__name__)

MAX_POLLS_IN_FLIGHT = 32  # one process never has more polls running than this, whatever KIE does


# Is any job of any tenant due? Two probes of the partial indexes (the states are literals so the planner
# can use them). At rest nothing is, and the lease below, which names every held tenant (10,000 ids), is
# not sent every second.
_POLLED_SQL = ", ".join(f"'{status.value}'" for status in POLLED)
_ANY_DUE = f"""
SELECT EXISTS (SELECT 1 FROM jobs WHERE status IN ({_POLLED_SQL}) AND next_poll_at <= now())
    OR EXISTS (SELECT 1 FROM jobs WHERE status = '{JobStatus.FAILED.value}' AND told_at IS NULL
               AND next_poll_at <= now())
"""


@dataclass(frozen=True)
class Due:
    """A job the poller leased, with what the database's clock says about it."""

    job: Job
    past_deadline: bool
    never_submitted: bool
    age_s: float


class JobPoller:
    def __init__(self, jobs: JobService, *, lease: Lease = ALWAYS_HELD) -> None:
        self._jobs = jobs
        self._lease = lease  # a tick delivers only while the process's hold on the tenant is confirmed
        self._pool = jobs.pool
        self._kie = jobs.kie
        self._registry = jobs.registry
        self._notifier = jobs.notifier
        self._polling: set[int] = set()  # job ids with a poll tick running in this process

    async def poll_once(self, held: Mapping[int, TenantHandle]) -> None:
        """Drive the due open jobs of the tenants this process holds (one query per tick, whatever their
        number). Never more ticks in flight than MAX_POLLS_IN_FLIGHT, and never two for one job: a KIE
        that hangs slows the poller down instead of piling up tasks."""
        room = MAX_POLLS_IN_FLIGHT - len(self._polling)
        if not held or room <= 0 or not await self._pool.fetchval(_ANY_DUE):
            return
        # Each due job is leased for a minute while its tick runs, so no other tick picks it up meanwhile.
        rows = await self._pool.fetch(
            """UPDATE jobs SET next_poll_at = now() + interval '60 seconds'
               WHERE id IN (SELECT id FROM jobs WHERE tenant_id = ANY($1::bigint[])
                            AND (status = ANY($2::text[]) OR (status = 'failed' AND told_at IS NULL))
                            AND next_poll_at <= now() AND NOT (id = ANY($3::bigint[]))
                            ORDER BY next_poll_at LIMIT $4 FOR UPDATE SKIP LOCKED)
               RETURNING *, deadline_at <= now() AS past_deadline,
                   (kie_state IS NULL AND task_id IS NULL
                    AND created_at < now() - make_interval(secs => $5)) AS never_submitted,
                   extract(epoch FROM now() - coalesce(submitted_at, created_at))::float8 AS age_s""",
            list(held),
            list(POLLED),
            list(self._polling),
            room,
            UNSUBMITTED_GRACE_S,
        )
        for row in rows:
            due = Due(Job.from_row(row), row["past_deadline"], row["never_submitted"], row["age_s"])
            tenant = held.get(due.job.tenant_id)
            if tenant is not None:
                self._polling.add(due.job.id)
                self._jobs.spawn(self._tick_once(tenant, due))

    async def _tick_once(self, tenant: TenantHandle, due: Due) -> None:
        try:
            with owned_work(self._lease):
                await self._tick(tenant, due)
        finally:
            self._polling.discard(due.job.id)

    async def _tick(self, tenant: TenantHandle, due: Due) -> None:
        job = due.job
        bound = log.bind(tenant=tenant.config.slug, job_id=job.id, correlation_id=job.correlation_id)
        if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            await self._redeliver(tenant, job)
            return
        if job.task_id is None:
            # Never claimed (a crash right after confirm): refund soon. Claimed but no task id (createTask's
            # outcome unknown): the task may exist at KIE, so its callback has until the deadline.
            if due.never_submitted:
                busy = JobOutcome(ok=False, reason="busy", detail="never submitted")
                await self._jobs.finish(tenant, job.id, busy, FinishWhen.NEVER_SUBMITTED)
            elif due.past_deadline:
                late = JobOutcome(ok=False, reason="timeout", detail="deadline passed")
                await self._jobs.finish(tenant, job.id, late, FinishWhen.PAST_DEADLINE)
            else:
                await self._schedule(job, due.age_s)
            return
        key = tenant.config.kie_api_key
        if not key:
            return
        family = self._jobs.family(job.model)
        info: TaskReport | None = None
        try:
            info = await family.status(self._kie, key, TaskRef(job.task_id, job.model, job.kie_input))
        except KieError as exc:
            bound.warning("status request failed", code=exc.code, family=family.name)
        if info is not None:
            bound.info("polled", task_id=job.task_id, state=info.state, poll=True)
            if info.is_final:
                await self._jobs.finish(tenant, job.id, outcome_of(info, family))
                return
        if due.past_deadline:
            late = JobOutcome(ok=False, reason="timeout", detail="deadline passed")
            await self._jobs.finish(tenant, job.id, late, FinishWhen.PAST_DEADLINE)
            return
        if info is not None and info.state != job.kie_state:
            row = await self._pool.fetchrow(
                "UPDATE jobs SET kie_state = $2 WHERE id = $1 AND status = ANY($3::text[]) RETURNING *",
                job.id,
                info.state,
                list(UNFINISHED),
            )
            if row is None:
                return  # finished meanwhile (a callback): nothing to show as progress
            job = Job.from_row(row)
            await self._notifier.progress(tenant, job, self._registry.get(job.model))
        await self._schedule(job, due.age_s)

    async def _redeliver(self, tenant: TenantHandle, job: Job) -> None:
        """The user was not told how the job ended (the process telling them died, or Telegram was out of
        reach): tell them again, a few times."""
        bound = log.bind(tenant=tenant.config.slug, job_id=job.id, correlation_id=job.correlation_id)
        attempts = await self._pool.fetchval(
            f"UPDATE jobs SET delivery_attempts = delivery_attempts + 1, "
            f"next_poll_at = now() + interval '{DELIVERY_LEASE}' WHERE id = $1 "
            f"AND (status = 'succeeded' OR (status = 'failed' AND told_at IS NULL)) RETURNING delivery_attempts",
            job.id,
        )
        if attempts is None:
            return  # told meanwhile: a stale tick must not tell it again
        if attempts > MAX_DELIVERY_ATTEMPTS:
            bound.error("giving up telling the user how a job ended", attempts=attempts)
            await self._jobs.mark_delivered(job.id)
            return
        bound.info("telling the user again how a job ended")
        await self._jobs.deliver(tenant, job, self._registry.get(job.model))

    async def _schedule(self, job: Job, age_s: float) -> None:
        # KIE's suggestion: every 2-3 s for 30 s, then 5-10 s, then 15-30 s.
        delay = 3 if age_s < 30 else 8 if age_s < 120 else 20
        await self._pool.execute(
            "UPDATE jobs SET next_poll_at = now() + make_interval(secs => $2), poll_count = poll_count + 1 "
            "WHERE id = $1 AND status = ANY($3::text[])",
            job.id,
            delay,
            list(UNFINISHED),
        )
