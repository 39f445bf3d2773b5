"""The tenant registry in Postgres: encrypted secrets in, decrypted `TenantConfig` out.

Every write bumps `config_version`; the table trigger NOTIFYs running supervisors.
"""

from __future__ import annotations

import asyncio
from typing import cast

import asyncpg

from shared.crypto import KeyRing
from shared.ids import webhook_secret
from shared.logs import get_logger
from shared.redact import REDACTOR
from supervisor.tenant_changes import NewTenant, TenantChanges, TenantError, merged_texts
from supervisor.tenant_rows import SECRET_COLUMNS, TenantHead, config_from_row, describe
from tenant_runtime.config import TenantConfig, TenantStatus

# The requests and the row mapping live in their own modules; callers import them from here too.
__all__ = ["NewTenant", "TenantChanges", "TenantError", "TenantStore", "describe"]

log = get_logger(__name__)

_YIELD_EVERY = 200  # rows decrypted between two turns of the event loop


class _KnownZones:
    """The time zone names Postgres knows, read once per process: a scan of pg_timezone_names reads the
    whole tz database (50-150 ms), which made adding 10,000 tenants one by one take eight minutes. The
    names change only with the server's tz files, which a running server does not reload."""

    names: frozenset[str] | None = None


async def _require_timezone(conn: asyncpg.Connection, name: str) -> None:
    """The free quota's day is computed by Postgres: the zone must be one it knows."""
    if _KnownZones.names is None:
        _KnownZones.names = frozenset(await conn.fetchval("SELECT array_agg(name) FROM pg_timezone_names"))
    if name not in _KnownZones.names:
        raise TenantError(f"unknown time zone {name!r}: use an IANA name such as Europe/Moscow")


def _scope(tenant_id: int) -> str:
    return f"tenant:{tenant_id}"


class TenantStore:
    def __init__(self, pool: asyncpg.Pool, keys: KeyRing) -> None:
        self._pool = pool
        self._keys = keys

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    @property
    def keys(self) -> KeyRing:
        return self._keys

    def _enc(self, tenant_id: int, column: str, value: str | None) -> str | None:
        if value is None:
            return None
        return self._keys.encrypt(value, scope=_scope(tenant_id), column=column)

    def _dec(self, tenant_id: int, column: str, value: str | None) -> str | None:
        if value is None:
            return None
        plain = self._keys.decrypt(value, scope=_scope(tenant_id), column=column)
        REDACTOR.register(plain)
        return plain

    async def add(self, new: NewTenant) -> TenantConfig:
        REDACTOR.register(new.bot_token, new.kie_api_key, new.kie_webhook_key)
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("SELECT 1 FROM tenants WHERE slug = $1", new.slug):
                raise TenantError(f"tenant {new.slug!r} already exists")
            if await conn.fetchval("SELECT slug FROM tenants WHERE bot_id = $1", new.bot_id):
                raise TenantError("this bot token is already used by another tenant")
            await _require_timezone(conn, new.limits.timezone)
            # The id is part of each ciphertext's associated data, so reserve it first.
            tenant_id = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('tenants', 'id'))")
            await conn.execute(
                """INSERT INTO tenants (id, slug, display_name, bot_id, bot_token_enc, kie_api_key_enc,
                       kie_webhook_key_enc, webhook_secret_enc, callback_secret_enc, admin_ids, markup,
                       default_language, bot_mode, welcome_bonus, referral_bonus, stars_packages, stars_rate_minor,
                       free_daily, max_open_jobs, rate_limit_per_minute, timezone, status, owner_id,
                       referral_bonus_invited)
                   OVERRIDING SYSTEM VALUE
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                           $18, $19, $20, $21, $22, $23, $24)""",
                tenant_id,
                new.slug,
                new.display_name,
                new.bot_id,
                self._enc(tenant_id, "bot_token", new.bot_token),
                self._enc(tenant_id, "kie_api_key", new.kie_api_key),
                self._enc(tenant_id, "kie_webhook_key", new.kie_webhook_key),
                self._enc(tenant_id, "webhook_secret", webhook_secret()),
                self._enc(tenant_id, "callback_secret", webhook_secret()),
                new.admin_ids,
                new.markup,
                new.default_language,
                new.bot_mode,
                new.welcome_bonus,
                new.referral_bonus,
                list(new.stars_packages) if new.stars_packages else None,
                new.stars_rate_minor,
                new.limits.free_daily,
                new.limits.max_open_jobs,
                new.limits.rate_per_minute,
                new.limits.timezone,
                new.status.value,
                new.owner_id,
                new.referral_bonus_invited,
            )
            row = await conn.fetchrow("SELECT * FROM tenants WHERE id = $1", tenant_id)
        return self._config(row)

    async def update(self, slug: str, changes: TenantChanges) -> TenantConfig:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM tenants WHERE slug = $1 FOR UPDATE", slug)
            if row is None:
                raise TenantError(f"no tenant {slug!r}")
            tid = row["id"]
            sets: dict[str, object] = {}
            if changes.display_name is not None:
                sets["display_name"] = changes.display_name
            if changes.bot_token is not None:
                token, bot_id = changes.bot_token
                REDACTOR.register(token)
                other = await conn.fetchval("SELECT slug FROM tenants WHERE bot_id = $1 AND id <> $2", bot_id, tid)
                if other:
                    raise TenantError("this bot token is already used by another tenant")
                sets["bot_token_enc"] = self._enc(tid, "bot_token", token)
                sets["bot_id"] = bot_id
                if row["status"] == TenantStatus.TOKEN_INVALID:
                    sets["status"] = TenantStatus.ENABLED.value
            if changes.kie_api_key is not None:
                REDACTOR.register(changes.kie_api_key)
                sets["kie_api_key_enc"] = self._enc(tid, "kie_api_key", changes.kie_api_key)
            if changes.kie_webhook_key is not None:
                REDACTOR.register(changes.kie_webhook_key)
                sets["kie_webhook_key_enc"] = self._enc(tid, "kie_webhook_key", changes.kie_webhook_key)
            for name in (
                "admin_ids",
                "markup",
                "default_language",
                "bot_mode",
                "welcome_bonus",
                "referral_bonus",
                "referral_bonus_invited",
                "disabled_models",
                "free_daily",
                "max_open_jobs",
                "rate_limit_per_minute",
                "timezone",
            ):
                value = getattr(changes, name)
                if value is not None:
                    sets[name] = value
            if changes.timezone is not None:
                await _require_timezone(conn, changes.timezone)
            if changes.stars_packages is not None:
                sets["stars_packages"] = list(changes.stars_packages) or None
            if changes.stars_rate_minor is not None:
                sets["stars_rate_minor"] = changes.stars_rate_minor or None
            if changes.support_url is not None:
                sets["support_url"] = changes.support_url or None
            if changes.texts is not None:
                sets["texts"] = merged_texts(row["texts"], changes.texts)
            if not sets:
                raise TenantError("nothing to update: give at least one option")
            row = await self._write(conn, tid, sets)
        return self._config(row)

    async def set_status(self, slug: str, status: str, *, last_error: str | None = None) -> TenantConfig:
        status = TenantStatus(status).value  # a str from the CLI, checked here
        async with self._pool.acquire() as conn, conn.transaction():
            tid = await conn.fetchval("SELECT id FROM tenants WHERE slug = $1 FOR UPDATE", slug)
            if tid is None:
                raise TenantError(f"no tenant {slug!r}")
            row = await self._write(conn, tid, {"status": status, "last_error": last_error})
        return self._config(row)

    async def transition(self, tenant_id: int, before: TenantStatus, after: TenantStatus) -> TenantConfig | None:
        """`before` -> `after` only if the tenant is still `before` (two operators pressing Approve at
        once, an owner resuming what an operator has just disabled): None when it was not."""
        async with self._pool.acquire() as conn, conn.transaction():
            current = await conn.fetchval("SELECT status FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)
            if current != before:
                return None
            row = await self._write(conn, tenant_id, {"status": after.value, "last_error": None})
        return self._config(row)

    async def remove_pending(self, tenant_id: int) -> TenantConfig | None:
        """A rejected request leaves nothing behind; None when it is no longer pending."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "DELETE FROM tenants WHERE id = $1 AND status = $2 RETURNING *", tenant_id, TenantStatus.PENDING.value
            )
        return None if row is None else self._config(row)

    async def owned_by(self, owner_id: int) -> list[TenantConfig]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM tenants WHERE owner_id = $1 ORDER BY created_at, id", owner_id)
        return [self._config(row) for row in rows]

    async def taken(self, *, slug: str | None = None, bot_id: int | None = None) -> bool:
        """Whether a tenant already has this slug or this bot (checked again, under the unique index, on insert)."""
        return bool(
            await self._pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM tenants WHERE slug = $1 OR bot_id = $2)", slug, bot_id
            )
        )

    async def mark_token_invalid(self, tenant_id: int, reason: str, *, config_version: int | None = None) -> None:
        """Called by a runtime; not a config change, so config_version stays. Only for the configuration
        the runtime was built from: a late failure of the old token must not undo a rotation."""
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE tenants SET status = 'token_invalid', last_error = $2, updated_at = now() "
                "WHERE id = $1 AND status = 'enabled' AND ($3::int IS NULL OR config_version = $3)",
                tenant_id,
                REDACTOR.redact(reason)[:500],
                config_version,
            )

    @staticmethod
    async def _write(conn: asyncpg.Connection, tenant_id: int, sets: dict[str, object]) -> asyncpg.Record:
        columns = list(sets)
        assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
        row = await conn.fetchrow(
            f"UPDATE tenants SET {assignments}, config_version = config_version + 1, updated_at = now() "
            "WHERE id = $1 RETURNING *",
            tenant_id,
            *(sets[c] for c in columns),
        )
        assert row is not None
        return cast(asyncpg.Record, row)

    async def remove(self, slug: str) -> None:
        async with self._pool.acquire() as conn:
            status = await conn.execute("DELETE FROM tenants WHERE slug = $1", slug)
        if status == "DELETE 0":
            raise TenantError(f"no tenant {slug!r}")

    async def get(self, slug: str) -> TenantConfig:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM tenants WHERE slug = $1", slug)
        if row is None:
            raise TenantError(f"no tenant {slug!r}")
        return self._config(row)

    async def get_by_id(self, tenant_id: int) -> TenantConfig | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM tenants WHERE id = $1", tenant_id)
        return None if row is None else self._config(row)

    async def all(self) -> list[TenantConfig]:
        """Every tenant that can be decrypted; one broken row is logged, never fatal for the others."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM tenants ORDER BY slug")
        return await self._configs(rows)

    async def by_ids(self, tenant_ids: list[int]) -> list[TenantConfig]:
        """These tenants (those that still exist and can be decrypted), in slug order."""
        if not tenant_ids:
            return []
        async with self._pool.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM tenants WHERE id = ANY($1::bigint[]) ORDER BY slug", tenant_ids)
        return await self._configs(rows)

    async def heads(self) -> dict[int, TenantHead]:
        """Every tenant's version and status, nothing decrypted: what a resync compares its slots with."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch("SELECT id, config_version, status FROM tenants")
        status = {s.value: s for s in TenantStatus}  # a dict lookup, not an Enum call per row
        return {r["id"]: TenantHead(r["config_version"], status[r["status"]]) for r in rows}

    async def _configs(self, rows: list[asyncpg.Record]) -> list[TenantConfig]:
        configs = []
        for i, row in enumerate(rows, start=1):
            try:
                configs.append(self._config(row))
            except TenantError as exc:
                log.error("tenant skipped", tenant=row["slug"], error=str(exc))
            if i % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # 10,000 rows decrypted in one go would stall /health and webhooks
        return configs

    async def rotate_keys(self) -> int:
        """Re-encrypt every secret under the primary key; row by row, so readers never block long."""
        rotated = 0
        async with self._pool.acquire() as conn:
            ids = [r["id"] for r in await conn.fetch("SELECT id FROM tenants ORDER BY id")]
            for tid in ids:
                async with conn.transaction():
                    row = await conn.fetchrow("SELECT * FROM tenants WHERE id = $1 FOR UPDATE", tid)
                    if row is None:
                        continue
                    sets = {}
                    for column in SECRET_COLUMNS:
                        value = row[column]
                        if value is not None and self._keys.needs_rotation(value):
                            name = column.removesuffix("_enc")
                            sets[column] = self._enc(tid, name, self._dec(tid, name, value))
                    if sets:
                        assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(sets, start=2))
                        # Same plaintext: not a config change, so no version bump and no runtime restart.
                        await conn.execute(f"UPDATE tenants SET {assignments} WHERE id = $1", tid, *sets.values())
                        rotated += len(sets)
        return rotated

    def _config(self, row: asyncpg.Record) -> TenantConfig:
        return config_from_row(row, self._dec)
