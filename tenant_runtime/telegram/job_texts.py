"""How a job's progress message reads, from the first second to its end (shared by the handler that
starts the job, the progress follower and the delivery code)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram.types import InlineKeyboardMarkup

from shared.registry import ModelSpec
from tenant_runtime.billing.job_money import JobMoney
from tenant_runtime.config import Language
from tenant_runtime.generation.jobs import Job
from tenant_runtime.telegram import keyboards
from tenant_runtime.telegram.keyboards import TextFn
from tenant_runtime.telegram.money_texts import money_line
from tenant_runtime.telegram.texts import text

# KIE's task states that have a word of their own; anything else (not yet submitted) reads as queued.
_STATE_WORDS = {"waiting": "job.state.waiting", "queuing": "job.state.queuing", "generating": "job.state.generating"}


def title(job: Job, spec: ModelSpec | None) -> str:
    if spec is None:
        return job.model
    return spec.title.ru if job.language == "ru" else spec.title.en


def clock(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def usual(seconds: int, lang: Language) -> str:
    """The usual duration, rounded as people say it: "~40 с", "~2 мин"."""
    if seconds < 60:
        return text(lang, "eta.seconds", n=max(5, round(seconds / 5) * 5))
    return text(lang, "eta.minutes", n=round(seconds / 60))


def progress_text(lang: Language, name: str, kie_state: str | None, elapsed: float, typical: int) -> str:
    return text(
        lang,
        "job.progress",
        title=name,
        state=text(lang, _STATE_WORDS.get(kie_state or "", "job.state.waiting")),
        elapsed=clock(elapsed),
        eta=usual(typical, lang),
    )


def first_progress(lang: Language, name: str, typical: int) -> str:
    """The progress message as it is sent, the moment Generate is tapped."""
    return text(lang, "job.queued", title=name, elapsed=clock(0), eta=usual(typical, lang))


def job_progress(job: Job, spec: ModelSpec | None, now: datetime | None = None) -> str:
    elapsed = ((now or datetime.now(UTC)) - job.created_at).total_seconds()
    return progress_text(job.language, title(job, spec), job.kie_state, elapsed, spec.typical_seconds if spec else 60)


def done_text(job: Job, spec: ModelSpec | None) -> str:
    return text(job.language, "job.done", title=title(job, spec))


def failed_view(
    job: Job, spec: ModelSpec | None, money: JobMoney, support_url: str | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    t = TextFn(job.language)
    body = t(
        "job.failed",
        title=title(job, spec),
        reason=t(f"fail.{job.fail_reason or 'provider'}"),
        money=money_line(job.language, money),
    )
    return body, keyboards.failure(job.id, t, support_url)
