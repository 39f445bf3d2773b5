"""Reads of a tenant's jobs for handlers and the admin panel, and the progress message's id."""

from __future__ import annotations

import asyncpg

from tenant_runtime.generation.job import DayCounts, Job


class JobQueries:
    """A base of `JobService`, so handlers keep asking one object; it provides the pool."""

    _pool: asyncpg.Pool

    async def open_jobs(self, tenant_id: int, user_id: int) -> int:
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND user_id = $2 AND status IN ('created', 'submitted')",
                tenant_id,
                user_id,
            )
        )

    async def started(self, tenant_id: int, idempotency_key: str) -> bool:
        """A job exists for this confirm screen (the user tapped Generate before)."""
        found = await self._pool.fetchval(
            "SELECT 1 FROM jobs WHERE tenant_id = $1 AND idempotency_key = $2", tenant_id, idempotency_key
        )
        return found is not None

    async def count_for_user(self, tenant_id: int, user_id: int) -> int:
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id
            )
        )

    async def today(self, tenant_id: int) -> DayCounts:
        """Today's (UTC) jobs of a tenant by outcome."""
        row = await self._pool.fetchrow(
            """SELECT count(*) FILTER (WHERE status IN ('succeeded', 'delivered')) AS succeeded,
                      count(*) FILTER (WHERE status = 'failed') AS failed,
                      count(*) FILTER (WHERE status IN ('created', 'submitted')) AS open
               FROM jobs WHERE tenant_id = $1 AND created_at >= date_trunc('day', now())""",
            tenant_id,
        )
        return DayCounts(row["succeeded"], row["failed"], row["open"])

    async def get(self, tenant_id: int, job_id: int) -> Job | None:
        row = await self._pool.fetchrow("SELECT * FROM jobs WHERE id = $1 AND tenant_id = $2", job_id, tenant_id)
        return None if row is None else Job.from_row(row)

    async def set_progress_message(self, job_id: int, message_id: int) -> None:
        await self._pool.execute("UPDATE jobs SET progress_message_id = $2 WHERE id = $1", job_id, message_id)

    async def recent(self, tenant_id: int, user_id: int, limit: int, offset: int) -> list[Job]:
        rows = await self._pool.fetch(
            "SELECT * FROM jobs WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at DESC LIMIT $3 OFFSET $4",
            tenant_id,
            user_id,
            limit,
            offset,
        )
        return [Job.from_row(r) for r in rows]
