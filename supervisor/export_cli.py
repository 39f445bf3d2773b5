"""`python -m supervisor export SLUG users|payments|generations [--since DATE|AGE] [--separator ';'] > file.csv`:
a shop's rows as CSV on standard output, streamed (tenant_runtime.exports), the same file /admin → Export
sends."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import UTC, datetime

from supervisor.audit_cli import parse_since
from supervisor.tenants import TenantStore
from supervisor.validation import InputError, parse_slug
from tenant_runtime.exports import SEPARATORS, ExportKind, export_csv

__all__ = ["add_export_parser", "run_export"]

EVERYTHING = datetime(2000, 1, 1, tzinfo=UTC)


def add_export_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = sub.add_parser("export", help="a shop's users, payments or generations as CSV on standard output")
    export.add_argument("slug")
    export.add_argument("kind", help="users, payments or generations")
    export.add_argument("--since", help="a date (2026-11-01), a UTC time or an age (30m, 24h, 7d); default: all")
    export.add_argument("--separator", default=",", help="',' (default) or ';' (Excel in a Russian locale)")


async def run_export(args: argparse.Namespace, store: TenantStore) -> None:
    slug = parse_slug(args.slug)
    if args.kind not in set(ExportKind):
        raise InputError(f"kind {args.kind[:20]!r} must be one of: {', '.join(k.value for k in ExportKind)}")
    if args.separator not in SEPARATORS:
        raise InputError(f"separator {args.separator[:5]!r} must be ',' or ';'")
    since = parse_since(args.since) if args.since is not None else EVERYTHING
    tenant = await store.get(slug)  # TenantError names an unknown slug
    out = sys.stdout.buffer
    rows = export_csv(store.pool, tenant.id, ExportKind(args.kind), since, separator=args.separator)
    async with contextlib.aclosing(rows):
        async for chunk in rows:
            await asyncio.to_thread(out.write, chunk)
    await asyncio.to_thread(out.flush)
