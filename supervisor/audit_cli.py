"""`python -m supervisor audit [SLUG] [--since 7d|2026-11-01|2026-11-01T10:00] [--limit N] [--json]`:
who did what and when, operators and tenant admins alike, oldest first."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta

import asyncpg

from supervisor.audit_view import AuditRecord, read_audit, slug_known
from supervisor.validation import InputError, parse_slug

__all__ = ["add_audit_parser", "parse_since", "run_audit"]

MAX_LIMIT = 10_000
_AGE_RE = re.compile(r"([1-9][0-9]{0,4})([mhd])")  # at most 99999 days: still after year 1
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_SINCE_HELP = "a date (2026-11-01), a UTC time (2026-11-01T10:00) or an age (30m, 24h, 7d)"


def add_audit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="who did what: operators' CLI actions and tenant admins' actions")
    audit.add_argument("slug", nargs="?", help="one tenant (a removed one too)")
    audit.add_argument("--since", help=_SINCE_HELP)
    audit.add_argument("--limit", default="200", help=f"the newest N records (1-{MAX_LIMIT}, default 200)")
    audit.add_argument("--json", action="store_true")


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """An absolute moment (naive means UTC) or an age before `now`; anything else is an InputError."""
    text = value.strip()
    now = now or datetime.now(UTC)
    if age := _AGE_RE.fullmatch(text):
        return now - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
    # fromisoformat alone takes odd shapes ("2026-W48", "20261101"): only the ones the help names.
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?([+-][0-9]{2}:[0-9]{2}|Z)?)?", text):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise InputError(f"since {value[:40]!r} must be {_SINCE_HELP}")


def _limit(value: str) -> int:
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise InputError(f"limit {value[:20]!r} must be a number from 1 to {MAX_LIMIT}")
    return int(value)


def _change(record: AuditRecord) -> str:
    before, after = record.before or {}, record.after or {}
    if not before and after and record.action.endswith("_add"):
        return "created"
    if before and not after:
        return "removed"
    return "; ".join(f"{key}: {before.get(key, '-')} → {after.get(key, '-')}" for key in after)


def _line(record: AuditRecord) -> str:
    parts = [
        record.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        record.tenant or "-",
        record.actor,
        record.action,
    ]
    if record.subject:
        parts.append(record.subject)
    change = _change(record)
    if change:
        parts.append(change)
    if record.detail:
        parts.append(f"({record.detail})")
    return "  ".join(parts)


async def run_audit(args: argparse.Namespace, pool: asyncpg.Pool) -> None:
    slug = parse_slug(args.slug) if args.slug is not None else None
    since = parse_since(args.since) if args.since is not None else None
    limit = _limit(args.limit)
    if slug is not None and not await slug_known(pool, slug):
        raise InputError(f"no tenant {slug!r}, and nothing audited under that name")
    records = await read_audit(pool, slug, since, limit)
    if args.json:
        print(json.dumps([r.as_dict() for r in records], ensure_ascii=False, indent=2, default=str))
    elif not records:
        print("nothing audited" + (f" for {slug}" if slug else "") + (" in that time" if since else ""))
    else:
        for record in records:
            print(_line(record))
