"""Keeps a job's progress message current: elapsed time edited in place while the job runs.

The message is sent the moment Generate is tapped ("queued… 0:00 · usually ~2 min"); the process that
sent it then edits the elapsed time, every 5 s for the first half minute, every 10 s up to three
minutes, then every 30 s (Telegram allows about one edit a second per chat; this stays far below,
and a process follows at most MAX_FOLLOWED jobs at once). The job poller also edits the message when
KIE's state changes, and delivery edits it one last time. A tick never leaves the message behind the
job: after each edit it looks again, and if the job finished meanwhile it writes the final text.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardMarkup

from shared.logs import get_logger
from shared.registry import ModelSpec
from tenant_runtime.generation.jobs import UNFINISHED, Job, JobService, JobStatus
from tenant_runtime.telegram.job_texts import done_text, failed_view, job_progress

log = get_logger(__name__)

MAX_FOLLOWED = 200
AFTER_DEADLINE_S = 60  # the poller refunds a job past its deadline; following stops soon after

_followed: set[asyncio.Task[None]] = set()


def cadence(elapsed: float) -> float:
    """Seconds until the next edit of a job that has run `elapsed` seconds."""
    if elapsed < 30:
        return 5.0
    if elapsed < 180:
        return 10.0
    return 30.0


@dataclass(frozen=True)
class Followed:
    bot: Bot
    jobs: JobService
    spec: ModelSpec
    tenant_id: int
    job_id: int
    chat_id: int
    message_id: int
    support_url: str | None = None


def follow(target: Followed) -> None:
    """Start editing the job's progress message in this process (not awaited; ends with the job)."""
    if len(_followed) >= MAX_FOLLOWED:
        return
    task = asyncio.create_task(_follow(target))
    _followed.add(task)
    task.add_done_callback(_followed.discard)


async def _follow(target: Followed) -> None:
    try:
        while True:
            job = await target.jobs.get(target.tenant_id, target.job_id)
            if job is None or job.status not in UNFINISHED:
                return
            now = datetime.now(UTC)
            if (now - job.deadline_at).total_seconds() > AFTER_DEADLINE_S:
                return
            await asyncio.sleep(cadence((now - job.created_at).total_seconds()))
            job = await target.jobs.get(target.tenant_id, target.job_id)
            if job is None or job.status not in UNFINISHED:
                return
            await _edit(target, job_progress(job, target.spec))
            after = await target.jobs.get(target.tenant_id, target.job_id)
            if after is not None and after.status not in UNFINISHED:
                await _final(target, after)  # it finished while we edited: never leave it showing progress
                return
    except Exception as exc:  # a database hiccup ends following; the poller and delivery carry on
        log.warning("progress following stopped", job_id=target.job_id, error=type(exc).__name__)


async def _final(target: Followed, job: Job) -> None:
    if job.status == JobStatus.FAILED:
        body, markup = failed_view(job, target.spec, await target.jobs.money(job), target.support_url)
        await _edit(target, body, markup)
    else:
        await _edit(target, done_text(job, target.spec))


async def _edit(target: Followed, body: str, markup: InlineKeyboardMarkup | None = None) -> None:
    with contextlib.suppress(TelegramAPIError, TimeoutError):
        await target.bot.edit_message_text(
            text=body,
            chat_id=target.chat_id,
            message_id=target.message_id,
            reply_markup=markup,
            request_timeout=10,
        )
