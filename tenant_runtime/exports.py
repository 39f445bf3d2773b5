"""A shop's users, payments or generations as CSV, streamed: a server-side cursor hands over rows a chunk
at a time and each chunk is encoded and given away before the next is read, so 100,000 rows cost the
memory of one chunk.

UTF-8 with a byte order mark (Excel then reads Cyrillic right); `,` or `;` between cells (Excel in a
Russian locale expects `;`). A cell that a spreadsheet would run as a formula (a user's name starting
with `=`, `+`, `-`, `@`) is written with a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from enum import StrEnum

import asyncpg

__all__ = ["SEPARATORS", "ExportKind", "export_csv"]

CHUNK_ROWS = 1000
SEPARATORS = (",", ";")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ExportKind(StrEnum):
    USERS = "users"
    PAYMENTS = "payments"
    GENERATIONS = "generations"


_QUERIES: dict[ExportKind, tuple[tuple[str, ...], str]] = {
    ExportKind.USERS: (
        ("user_id", "username", "first_name", "language", "joined_at", "last_seen_at", "banned", "referred_by"),
        """SELECT user_id, username, first_name, language, created_at, last_seen_at, banned_at IS NOT NULL,
                  referred_by
           FROM bot_users WHERE tenant_id = $1 AND created_at >= $2 ORDER BY created_at, user_id""",
    ),
    ExportKind.PAYMENTS: (
        ("paid_at", "user_id", "stars", "amount_minor", "status", "refunded_at", "charge_id"),
        """SELECT created_at, user_id, stars, amount_minor, status, refunded_at, charge_id
           FROM star_payments WHERE tenant_id = $1 AND created_at >= $2 ORDER BY created_at, charge_id""",
    ),
    ExportKind.GENERATIONS: (
        (
            "job_id",
            "created_at",
            "user_id",
            "model",
            "status",
            "price_minor",
            "kie_credits",
            "finished_at",
            "fail_reason",
        ),
        """SELECT id, created_at, user_id, model, status, price, kie_credits, finished_at, fail_reason
           FROM jobs WHERE tenant_id = $1 AND created_at >= $2 ORDER BY created_at, id""",
    ),
}


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _encode(rows: Sequence[Sequence[object]], separator: str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=separator, lineterminator="\r\n")
    writer.writerows([_cell(v) for v in row] for row in rows)
    return buffer.getvalue().encode("utf-8")


async def export_csv(
    pool: asyncpg.Pool, tenant_id: int, kind: ExportKind, since: datetime, *, separator: str = ","
) -> AsyncGenerator[bytes, None]:
    """The file, chunk by chunk: the byte order mark and the header first, then CHUNK_ROWS rows at a time."""
    if separator not in SEPARATORS:
        raise ValueError(f"separator must be one of {SEPARATORS}")
    header, query = _QUERIES[kind]
    yield "\ufeff".encode() + _encode([header], separator)
    async with pool.acquire() as conn, conn.transaction():
        cursor = await conn.cursor(query, tenant_id, since)
        while rows := await cursor.fetch(CHUNK_ROWS):
            yield _encode([tuple(r) for r in rows], separator)
