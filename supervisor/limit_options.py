"""The limit options of `tenants add` and `tenants update`: --free-daily, --max-open-jobs, --rate-limit,
--timezone. Each is parsed before anything is written; a bad one is one error line and nothing changes.
Values are read as text, so "abc" or "-1" get our message rather than argparse's."""

from __future__ import annotations

import argparse
from typing import Any

from supervisor.validation import parse_free_daily, parse_max_open_jobs, parse_rate_limit, parse_timezone
from tenant_runtime.limits.shop_limits import DEFAULT_LIMITS, ShopLimits

__all__ = ["add_limit_arguments", "limit_changes", "new_limits"]


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    d = DEFAULT_LIMITS
    parser.add_argument("--free-daily", help=f"free generations per user per day, 0 for none (default {d.free_daily})")
    parser.add_argument("--max-open-jobs", help=f"generations one user may run at once (default {d.max_open_jobs})")
    parser.add_argument(
        "--rate-limit", help=f"messages and taps per user, e.g. 30/min (default {d.rate_per_minute}/min)"
    )
    parser.add_argument("--timezone", help=f"IANA zone where the free quota resets at midnight (default {d.timezone})")


def new_limits(args: argparse.Namespace) -> ShopLimits:
    """The limits of a new tenant: the options given, safe defaults for the others."""
    d = DEFAULT_LIMITS
    return ShopLimits(
        free_daily=parse_free_daily(args.free_daily) if args.free_daily is not None else d.free_daily,
        max_open_jobs=parse_max_open_jobs(args.max_open_jobs) if args.max_open_jobs is not None else d.max_open_jobs,
        rate_per_minute=parse_rate_limit(args.rate_limit) if args.rate_limit is not None else d.rate_per_minute,
        timezone=parse_timezone(args.timezone) if args.timezone is not None else d.timezone,
    )


def limit_changes(args: argparse.Namespace) -> dict[str, Any]:
    """`TenantChanges` fields for the limit options given (None leaves a limit as it is)."""
    return {
        "free_daily": parse_free_daily(args.free_daily) if args.free_daily is not None else None,
        "max_open_jobs": parse_max_open_jobs(args.max_open_jobs) if args.max_open_jobs is not None else None,
        "rate_limit_per_minute": parse_rate_limit(args.rate_limit) if args.rate_limit is not None else None,
        "timezone": parse_timezone(args.timezone) if args.timezone is not None else None,
    }
