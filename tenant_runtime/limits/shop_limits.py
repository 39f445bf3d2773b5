"""The limits a tenant's operator sets, their safe defaults and their bounds (also CHECKs in sql/010)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DEFAULT_LIMITS",
    "FREE_DAILY_MAX",
    "MAX_OPEN_JOBS_MAX",
    "RATE_LIMIT_MAX",
    "LimitKind",
    "ShopLimits",
]

FREE_DAILY_MAX = 1000  # 0 is meaningful: no free generations at all
MAX_OPEN_JOBS_MAX = 100  # at least 1: a shop where nobody can generate is a disabled tenant
RATE_LIMIT_MAX = 1000  # per minute; at least 1


@dataclass(frozen=True)
class ShopLimits:
    free_daily: int = 5  # free generations per user per day (midnight in `timezone`)
    max_open_jobs: int = 3  # generations one user may have running at a time
    rate_per_minute: int = 30  # messages and taps one user may send per minute
    timezone: str = "Europe/Moscow"  # an IANA name; the free quota's day starts at midnight there


DEFAULT_LIMITS = ShopLimits()


class LimitKind(StrEnum):
    """Which limit refused something (the `limit` label of `limit_hits_total`)."""

    RATE = "rate"
    FREE_DAILY = "free_daily"
    OPEN_JOBS = "open_jobs"
