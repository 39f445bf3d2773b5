"""The tenant registry in Postgres: encrypted secrets in, decrypted `TenantConfig` out.

Every write bumps `config_version`; the table trigger NOTIFYs running supervisors.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import cast

import asyncpg

from shared.crypto import CryptoError, KeyRing
from shared.ids import webhook_secret
from shared.logs import get_logger
from shared.redact import REDACTOR, mask
from tenant_runtime.config import BotMode, Language, TenantConfig

log = get_logger(__name__)

_SECRET_COLUMNS = (
    "bot_token_enc",
    "kie_api_key_enc",
    "kie_webhook_key_enc",
    "webhook_secret_enc",
    "callback_secret_enc",
)


class TenantError(Exception):
    """A registry operation failed; the message is safe to show (no secrets)."""


@dataclass(frozen=True)
class NewTenant:
    slug: str
    display_name: str
    bot_token: str
    bot_id: int
    kie_api_key: str | None
    admin_ids: list[int]
    markup: Decimal = Decimal("2.0")
    default_language: Language = "ru"
    bot_mode: BotMode | None = None
    kie_webhook_key: str | None = None
    welcome_bonus: int = 0
    referral_bonus: int = 0
    stars_packages: tuple[int, ...] | None = None
    stars_rate_minor: int | None = None


@dataclass(frozen=True)
class TenantChanges:
    display_name: str | None = None
    bot_token: tuple[str, int] | None = None
    kie_api_key: str | None = None
    kie_webhook_key: str | None = None
    admin_ids: list[int] | None = None
    markup: Decimal | None = None
    default_language: Language | None = None
    bot_mode: BotMode | None = None
    welcome_bonus: int | None = None
    referral_bonus: int | None = None
    disabled_models: list[str] | None = None
    # () / 0 put the tenant back on the platform's Stars packages / rate; None leaves them as they are.
    stars_packages: tuple[int, ...] | None = None
    stars_rate_minor: int | None = None


def _scope(tenant_id: int) -> str:
    return f"tenant:{tenant_id}"


class TenantStore:
    def __init__(self, pool: asyncpg.Pool, keys: KeyRing) -> None:
        self._pool = pool
        self._keys = keys

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
            # The id is part of each ciphertext's associated data, so reserve it first.
            tenant_id = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('tenants', 'id'))")
            await conn.execute(
                """INSERT INTO tenants (id, slug, display_name, bot_id, bot_token_enc, kie_api_key_enc,
                       kie_webhook_key_enc, webhook_secret_enc, callback_secret_enc, admin_ids, markup,
                       default_language, bot_mode, welcome_bonus, referral_bonus, stars_packages, stars_rate_minor)
                   OVERRIDING SYSTEM VALUE
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)""",
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
                if row["status"] == "token_invalid":
                    sets["status"] = "enabled"
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
                "disabled_models",
            ):
                value = getattr(changes, name)
                if value is not None:
                    sets[name] = value
            if changes.stars_packages is not None:
                sets["stars_packages"] = list(changes.stars_packages) or None
            if changes.stars_rate_minor is not None:
                sets["stars_rate_minor"] = changes.stars_rate_minor or None
            if not sets:
                raise TenantError("nothing to update: give at least one option")
            row = await self._write(conn, tid, sets)
        return self._config(row)

    async def set_status(self, slug: str, status: str, *, last_error: str | None = None) -> TenantConfig:
        async with self._pool.acquire() as conn, conn.transaction():
            tid = await conn.fetchval("SELECT id FROM tenants WHERE slug = $1 FOR UPDATE", slug)
            if tid is None:
                raise TenantError(f"no tenant {slug!r}")
            row = await self._write(conn, tid, {"status": status, "last_error": last_error})
        return self._config(row)

    async def mark_token_invalid(self, tenant_id: int, reason: str) -> None:
        """Called by a runtime; not a config change, so config_version stays."""
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE tenants SET status = 'token_invalid', last_error = $2, updated_at = now() "
                "WHERE id = $1 AND status = 'enabled'",
                tenant_id,
                REDACTOR.redact(reason)[:500],
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
        configs = []
        for row in rows:
            try:
                configs.append(self._config(row))
            except TenantError as exc:
                log.error("tenant skipped", tenant=row["slug"], error=str(exc))
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
                    for column in _SECRET_COLUMNS:
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
        tid = row["id"]
        try:
            token = self._dec(tid, "bot_token", row["bot_token_enc"])
            secret = self._dec(tid, "webhook_secret", row["webhook_secret_enc"])
            callback = self._dec(tid, "callback_secret", row["callback_secret_enc"])
            kie = self._dec(tid, "kie_api_key", row["kie_api_key_enc"])
            kie_hook = self._dec(tid, "kie_webhook_key", row["kie_webhook_key_enc"])
        except CryptoError as exc:
            raise TenantError(f"tenant {row['slug']!r}: {exc}") from None
        assert token is not None and secret is not None and callback is not None
        return TenantConfig(
            id=tid,
            slug=row["slug"],
            display_name=row["display_name"],
            status=row["status"],
            bot_id=row["bot_id"],
            bot_token=token,
            kie_api_key=kie,
            kie_webhook_key=kie_hook,
            webhook_secret=secret,
            callback_secret=callback,
            admin_ids=frozenset(row["admin_ids"]),
            lock_key=row["lock_key"],
            markup=row["markup"],
            default_language=row["default_language"],
            bot_mode=row["bot_mode"],
            welcome_bonus=row["welcome_bonus"],
            referral_bonus=row["referral_bonus"],
            disabled_models=frozenset(row["disabled_models"]),
            config_version=row["config_version"],
            stars_packages=tuple(row["stars_packages"]) if row["stars_packages"] else None,
            stars_rate_minor=row["stars_rate_minor"],
        )


def describe(config: TenantConfig, last_error: str | None = None) -> dict[str, object]:
    """The operator's view of a tenant: every secret masked."""
    return {
        "id": config.id,
        "slug": config.slug,
        "display_name": config.display_name,
        "status": config.status,
        "bot_id": config.bot_id,
        "bot_token": mask(config.bot_token),
        "kie_api_key": mask(config.kie_api_key) if config.kie_api_key else None,
        "kie_webhook_key": "set" if config.kie_webhook_key else None,
        "admin_ids": sorted(config.admin_ids),
        "lock_key": config.lock_key,
        "markup": str(config.markup),
        "default_language": config.default_language,
        "bot_mode": config.bot_mode,
        "welcome_bonus": config.welcome_bonus,
        "referral_bonus": config.referral_bonus,
        "disabled_models": sorted(config.disabled_models),
        "stars_packages": list(config.stars_packages) if config.stars_packages else None,
        "stars_rate_minor": config.stars_rate_minor,
        "config_version": config.config_version,
        "webhook_path": f"/webhook/{config.slug}",
    }
