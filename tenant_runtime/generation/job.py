"""A generation job as stored: its status machine, its row, how it ended, and what is told to users.

created (hold reserved) -> submitted (KIE has a task) -> succeeded (hold committed) -> delivered;
or -> failed (hold released) from created or submitted. Every transition is one UPDATE guarded by
the status it expects, so whoever comes second (callback or poll, this process or another) changes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, Protocol

import asyncpg
from aiogram import Bot

from shared.registry import ModelSpec
from tenant_runtime.billing.job_money import JobMoney
from tenant_runtime.config import Language, TenantConfig
from tenant_runtime.kie.errors import (
    KieAuthError,
    KieCircuitOpenError,
    KieError,
    KieInsufficientCreditsError,
    KieTransportError,
    KieValidationError,
)
from tenant_runtime.kie.families import Family, TaskReport

__all__ = [
    "POLLED",
    "UNFINISHED",
    "UNSUBMITTED_GRACE_S",
    "DayCounts",
    "FinishWhen",
    "Job",
    "JobOutcome",
    "JobStatus",
    "Notifier",
    "TenantHandle",
    "outcome_of",
    "reason_for",
]

UNSUBMITTED_GRACE_S = 90  # a job never submitted (crash, uncertain createTask) is refunded after this


class JobStatus(StrEnum):
    """A job's life: created (hold reserved) -> submitted (KIE has a task) -> succeeded (hold
    committed) -> delivered; or -> failed (hold released) from created or submitted."""

    CREATED = "created"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DELIVERED = "delivered"


UNFINISHED = (JobStatus.CREATED, JobStatus.SUBMITTED)
POLLED = (JobStatus.CREATED, JobStatus.SUBMITTED, JobStatus.SUCCEEDED)


class FinishWhen(Enum):
    """The condition, checked in SQL (the database's clock) when the job is settled, under which a
    finish may happen: a stale snapshot can then never fail a job someone has just moved on."""

    UNFINISHED = "status IN ('created', 'submitted')"
    PAST_DEADLINE = "status IN ('created', 'submitted') AND deadline_at <= now()"
    NEVER_SUBMITTED = (
        f"status = 'created' AND kie_state IS NULL AND task_id IS NULL "
        f"AND created_at < now() - interval '{UNSUBMITTED_GRACE_S} seconds'"
    )


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
class JobOutcome:
    """How a job ended. `reason` is a text-catalog key suffix (fail.<reason>) for failures."""

    ok: bool
    result_urls: tuple[str, ...] = ()
    result_text: str | None = None
    reason: str | None = None
    detail: str | None = None


class Notifier(Protocol):
    """Tells the user about their job (implemented by the delivery module)."""

    async def progress(self, tenant: TenantHandle, job: Job, spec: ModelSpec | None) -> None: ...

    async def delivered(self, tenant: TenantHandle, job: Job, spec: ModelSpec | None, money: JobMoney) -> None: ...

    async def failed(self, tenant: TenantHandle, job: Job, spec: ModelSpec | None, money: JobMoney) -> None: ...

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


def outcome_of(report: TaskReport, family: Family) -> JobOutcome:
    """How a finished task ends its job; the family words a failure as one of the product's reasons."""
    if report.state == "success":
        return JobOutcome(ok=True, result_urls=report.outputs, result_text=report.text)
    return JobOutcome(ok=False, reason=family.reason(report), detail=f"{report.fail_code}: {report.fail_msg}"[:300])
