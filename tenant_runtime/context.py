"""Per-update context for handlers: the tenant, the user, their language, and the shared services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from shared.registry import ModelSpec
from tenant_runtime.config import Language, TenantConfig
from tenant_runtime.pricing import format_money
from tenant_runtime.quotes import cheapest, quote
from tenant_runtime.services import Services
from tenant_runtime.texts import pick_language, text
from tenant_runtime.users import BotUser

if TYPE_CHECKING:
    from tenant_runtime.runtime import TenantRuntime


@dataclass(frozen=True)
class Ctx:
    runtime: TenantRuntime
    user: BotUser
    lang: Language
    correlation_id: str

    @property
    def tenant(self) -> TenantConfig:
        return self.runtime.config

    @property
    def services(self) -> Services:
        return self.runtime.services

    def t(self, key: str, **values: object) -> str:
        return text(self.lang, key, **values)

    def money(self, minor: int) -> str:
        return format_money(minor, self.services.settings.currency_code, self.lang)

    def price(self, spec: ModelSpec, params: dict[str, object]) -> int | None:
        return quote(spec, params, self.tenant.markup, self.services.credit_rate)

    def price_label(self, spec: ModelSpec) -> str:
        found = cheapest(spec, self.tenant.markup, self.services.credit_rate)
        if found is None:
            return "—"
        amount, varies = found
        if amount == 0:
            return self.t("catalog.free")
        return self.t("catalog.from", price=self.money(amount)) if varies else self.money(amount)

    def visible(self, spec: ModelSpec) -> bool:
        """Sellable, not disabled by the tenant's admin, and its file inputs can be hosted."""
        if not spec.sellable or spec.id in self.tenant.disabled_models:
            return False
        needs_files = any(
            f.required and f.type in ("image_url", "image_urls", "audio_url", "video_url") for f in spec.inputs
        )
        return not needs_files or bool(self.services.settings.public_base_url)

    def models(self, category: str) -> list[ModelSpec]:
        return [m for m in self.services.registry.by_category(category) if self.visible(m)]

    @property
    def is_admin(self) -> bool:
        return self.user.user_id in self.tenant.admin_ids


class UserContextMiddleware(BaseMiddleware):
    """Loads (or creates) the Telegram user of this tenant and hands handlers a `ctx`."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        runtime: TenantRuntime = data["runtime"]
        sender: User | None = data.get("event_from_user")
        if sender is None:
            return await handler(event, data)
        config = runtime.config
        services = runtime.services
        user = await services.users.touch(
            config.id,
            sender.id,
            language=pick_language(sender.language_code, config.default_language),
            first_name=sender.first_name,
            username=sender.username,
        )
        if user.is_new and config.welcome_bonus > 0:
            await services.ledger.grant_welcome_bonus(config.id, sender.id, config.welcome_bonus)
        data["ctx"] = Ctx(runtime=runtime, user=user, lang=user.language, correlation_id=data["correlation_id"])
        return await handler(event, data)
