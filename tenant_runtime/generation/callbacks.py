"""KIE's callbacks: authenticate (the URL token names the job; KIE's optional signature), match the
task to the job, and converge on the job's one guarded finish. Forged or foreign callbacks change
nothing; a callback that beats createTask's reply is kept until the task id is known."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from shared import strict
from shared.logs import get_logger
from tenant_runtime.generation.callback_token import read_token
from tenant_runtime.generation.job import TenantHandle
from tenant_runtime.generation.jobs import JobService
from tenant_runtime.kie.callbacks import verify_signature
from tenant_runtime.kie.errors import KieCallbackError

__all__ = ["CallbackVerdict", "receive_callback"]

log = get_logger(__name__)


class CallbackVerdict(StrEnum):
    """What became of one callback; the HTTP layer maps it to a status KIE understands."""

    ACCEPTED = "accepted"  # applied, or kept for a job whose task id is not known yet
    BAD_TOKEN = "bad_token"  # noqa: S105 - a verdict name
    BAD_SIGNATURE = "bad_signature"
    BAD_BODY = "bad_body"
    FOREIGN_TASK = "foreign_task"  # the task belongs to another job


async def receive_callback(
    jobs: JobService, tenant: TenantHandle, token: str, body: bytes, headers: Mapping[str, str]
) -> CallbackVerdict:
    config = tenant.config
    job_id = read_token(config.callback_secret, config.id, token)
    if job_id is None:
        log.warning("callback rejected: bad token", tenant=config.slug)
        return CallbackVerdict.BAD_TOKEN
    raw = _object(body)
    if raw is None:
        return CallbackVerdict.BAD_BODY
    row = await jobs.pool.fetchrow(
        "SELECT id, task_id, model FROM jobs WHERE id = $1 AND tenant_id = $2", job_id, config.id
    )
    # The job's model names the family that reads its callbacks; a job not known (yet) is read as the
    # jobs API would be, and only kept.
    family = jobs.family(row["model"] if row is not None else "")
    try:
        report = family.parse_callback(raw)
    except KieCallbackError:
        return CallbackVerdict.BAD_BODY
    if config.kie_webhook_key:
        stamp, signature = headers.get("X-Webhook-Timestamp"), headers.get("X-Webhook-Signature")
        if not stamp or not signature or not verify_signature(report.task_id, stamp, signature, config.kie_webhook_key):
            log.warning("callback rejected: bad KIE signature", tenant=config.slug, job_id=job_id)
            return CallbackVerdict.BAD_SIGNATURE
    if row is None:
        await jobs.pool.execute(
            "INSERT INTO kie_orphan_callbacks (task_id, tenant_id, body) VALUES ($1, $2, $3) "
            "ON CONFLICT (task_id) DO NOTHING",
            report.task_id,
            config.id,
            raw,
        )
        log.info("orphan callback stored", tenant=config.slug, task_id=report.task_id)
        return CallbackVerdict.ACCEPTED
    if row["task_id"] is not None and row["task_id"] != report.task_id:
        log.warning("callback rejected: task does not belong to the job", tenant=config.slug, job_id=job_id)
        return CallbackVerdict.FOREIGN_TASK
    log.info("callback received", tenant=config.slug, job_id=job_id, task_id=report.task_id, state=report.state)
    await jobs.apply_callback(tenant, job_id, report, family)
    return CallbackVerdict.ACCEPTED


def _object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object: depth-bounded, and only text Postgres can store (an unknown job's
    callback is kept as it came)."""
    try:
        raw = strict.loads(body, storable=True)
    except strict.JsonError:
        return None
    return raw if isinstance(raw, dict) else None
