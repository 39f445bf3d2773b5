"""What owners and approving operators may do to shops, with the rules that keep it safe:

* an owner acts only on shops whose `owner_id` is theirs (`NotYours` otherwise, nothing read or written);
* one request per owner waits for approval at a time;
* every state change is a compare-and-set (`TenantStore.transition`): two operators pressing Approve at
  once, or an owner resuming what an operator has just disabled, change nothing the second time;
* every action is in the operator audit (`owner:<id>` or `operator:telegram:<id>`), secrets masked.

The tenant's row change NOTIFYs every supervisor, which starts or stops the bot within a beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from shared.settings import Settings
from supervisor.operator_audit import OperatorAction, owner_actor, record_operator
from supervisor.tenants import NewTenant, TenantChanges, TenantError, TenantStore, describe
from tenant_runtime.config import Language, TenantConfig, TenantStatus

__all__ = ["MAX_ADMINS", "NotYours", "OwnerShops", "ShopRequest", "Taken"]

MAX_ADMINS = 20


class NotYours(Exception):
    """The shop does not exist or belongs to someone else (the same answer for both)."""


class Taken(Exception):
    """The slug or the bot is already a tenant's, or the owner already has a request pending."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what  # "slug", "bot" or "pending"


@dataclass(frozen=True)
class ShopRequest:
    owner_id: int
    name: str
    slug: str
    bot_token: str
    bot_id: int
    kie_api_key: str
    language: Language
    markup: Decimal


def operator_in_chat(user_id: int) -> str:
    return f"operator:telegram:{user_id}"


class OwnerShops:
    def __init__(self, store: TenantStore, settings: Settings) -> None:
        self._store = store
        self._settings = settings

    @property
    def _pool(self) -> asyncpg.Pool:
        return self._store.pool

    async def owned(self, owner_id: int) -> list[TenantConfig]:
        return await self._store.owned_by(owner_id)

    async def pending(self, owner_id: int) -> TenantConfig | None:
        return next((c for c in await self.owned(owner_id) if c.status is TenantStatus.PENDING), None)

    async def taken(self, *, slug: str | None = None, bot_id: int | None = None) -> bool:
        return await self._store.taken(slug=slug, bot_id=bot_id)

    async def create(self, request: ShopRequest) -> TenantConfig:
        """A pending tenant (ONBOARDING=approval) or an enabled one (open); the owner is its first admin."""
        if await self.pending(request.owner_id) is not None:
            raise Taken("pending")
        status = TenantStatus.ENABLED if self._settings.onboarding == "open" else TenantStatus.PENDING
        new = NewTenant(
            slug=request.slug,
            display_name=request.name,
            bot_token=request.bot_token,
            bot_id=request.bot_id,
            kie_api_key=request.kie_api_key,
            admin_ids=[request.owner_id],
            markup=request.markup,
            default_language=request.language,
            status=status,
            owner_id=request.owner_id,
        )
        try:
            config = await self._store.add(new)
        except TenantError:
            # add() names the clash in English for the CLI; the owner is told in their language.
            raise Taken("slug" if await self._store.taken(slug=request.slug) else "bot") from None
        except asyncpg.UniqueViolationError as exc:  # a race with another request: the index decided
            raise Taken(_clash(exc)) from None
        await record_operator(
            self._pool, owner_actor(request.owner_id), OperatorAction.SHOP_CREATE, config, None, describe(config)
        )
        return config

    async def approve(self, tenant_id: int, operator_id: int) -> TenantConfig | None:
        return await self._move(
            tenant_id,
            TenantStatus.PENDING,
            TenantStatus.ENABLED,
            operator_in_chat(operator_id),
            OperatorAction.SHOP_APPROVE,
        )

    async def reject(self, tenant_id: int, operator_id: int) -> TenantConfig | None:
        config = await self._store.remove_pending(tenant_id)
        if config is not None:
            actor = operator_in_chat(operator_id)
            await record_operator(self._pool, actor, OperatorAction.SHOP_REJECT, config, describe(config), None)
        return config

    async def pause(self, owner_id: int, tenant_id: int) -> TenantConfig | None:
        await self._own(owner_id, tenant_id)
        return await self._move(
            tenant_id, TenantStatus.ENABLED, TenantStatus.PAUSED, owner_actor(owner_id), OperatorAction.SHOP_PAUSE
        )

    async def resume(self, owner_id: int, tenant_id: int) -> TenantConfig | None:
        await self._own(owner_id, tenant_id)
        return await self._move(
            tenant_id, TenantStatus.PAUSED, TenantStatus.ENABLED, owner_actor(owner_id), OperatorAction.SHOP_RESUME
        )

    async def set_kie_key(self, owner_id: int, tenant_id: int, key: str) -> TenantConfig:
        config = await self._own(owner_id, tenant_id)
        changed = await self._store.update(config.slug, TenantChanges(kie_api_key=key))
        await self._audit(owner_actor(owner_id), OperatorAction.SHOP_KIE_KEY, config, changed)
        return changed

    async def add_admin(self, owner_id: int, tenant_id: int, admin_id: int) -> tuple[TenantConfig, bool]:
        """The shop, and whether the admin is new; `Taken("admins")` when the shop has MAX_ADMINS."""
        config = await self._own(owner_id, tenant_id)
        if admin_id in config.admin_ids:
            return config, False
        if len(config.admin_ids) >= MAX_ADMINS:
            raise Taken("admins")
        admins = [*sorted(config.admin_ids), admin_id]
        changed = await self._store.update(config.slug, TenantChanges(admin_ids=admins))
        await self._audit(owner_actor(owner_id), OperatorAction.SHOP_ADMIN_ADD, config, changed)
        return changed, True

    async def _own(self, owner_id: int, tenant_id: int) -> TenantConfig:
        config = await self._store.get_by_id(tenant_id)
        if config is None or config.owner_id != owner_id:
            raise NotYours
        return config

    async def _move(
        self, tenant_id: int, before: TenantStatus, after: TenantStatus, actor: str, action: OperatorAction
    ) -> TenantConfig | None:
        old = await self._store.get_by_id(tenant_id)
        changed = await self._store.transition(tenant_id, before, after)
        if changed is not None and old is not None:
            await self._audit(actor, action, old, changed)
        return changed

    async def _audit(self, actor: str, action: OperatorAction, before: TenantConfig, after: TenantConfig) -> None:
        await record_operator(self._pool, actor, action, after, describe(before), describe(after))


def _clash(exc: asyncpg.UniqueViolationError) -> str:
    constraint = exc.constraint_name or ""
    if "pending" in constraint:
        return "pending"
    return "bot" if "bot_id" in constraint else "slug"
