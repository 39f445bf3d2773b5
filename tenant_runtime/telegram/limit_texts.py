"""How a refused generation and the free allowance are worded for the user."""

from __future__ import annotations

import math

from tenant_runtime.config import Language
from tenant_runtime.limits.job_limits import FreeAllowance, FreeQuotaUsed, JobLimitReached, TooManyOpenJobs
from tenant_runtime.telegram.texts import text

__all__ = ["duration", "free_line", "free_refusal", "refusal"]


def duration(lang: Language, seconds: float) -> str:
    """ "3 ч 05 мин", "12 мин": whole minutes, rounded up (a wait is never shown shorter than it is)."""
    minutes = max(1, math.ceil(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    if hours:
        return text(lang, "duration.hours", hours=hours, minutes=f"{minutes:02d}")
    return text(lang, "duration.minutes", minutes=minutes)


def free_line(lang: Language, allowance: FreeAllowance) -> str:
    """ "Бесплатно: осталось 3 из 5 сегодня"."""
    if allowance.daily_limit == 0:
        return text(lang, "limit.free_bonus_only", bonus=allowance.bonus_left)
    line = text(lang, "limit.free_left", left=allowance.left_today, limit=allowance.daily_limit)
    if allowance.bonus_left > 0:
        line += text(lang, "limit.free_bonus", bonus=allowance.bonus_left)
    return line


def free_refusal(lang: Language, allowance: FreeAllowance) -> str:
    if allowance.daily_limit == 0:
        return text(lang, "limit.free_off")
    return text(
        lang,
        "limit.free_used",
        used=allowance.used_today,
        limit=allowance.daily_limit,
        reset_at=allowance.reset_at,
        timezone=allowance.timezone,
        wait=duration(lang, allowance.resets_in_s),
    )


def refusal(lang: Language, exc: JobLimitReached) -> str:
    if isinstance(exc, FreeQuotaUsed):
        return free_refusal(lang, exc.allowance)
    if isinstance(exc, TooManyOpenJobs):
        return text(lang, "limit.open_jobs", running=exc.running, limit=exc.limit)
    raise TypeError(f"no text for {type(exc).__name__}")
