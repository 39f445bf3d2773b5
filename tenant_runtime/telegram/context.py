"""Per-update context for handlers: the tenant, the user, their language, and the shared services."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TelegramObject, User

from shared.registry import ModelSpec, Registry
from tenant_runtime.billing.pricing import format_money
from tenant_runtime.billing.quotes import cheapest, quote
from tenant_runtime.config import Language, TenantConfig
from tenant_runtime.services import Services
from tenant_runtime.telegram.texts import pick_language, text
from tenant_runtime.users import BotUser

if TYPE_CHECKING:
    from tenant_runtime.arrival import Arrival
    from tenant_runtime.runtime import TenantRuntime


def _visible(spec: ModelSpec, disabled: frozenset[str], files_hosted: bool) -> bool:
    return spec.id not in disabled and (files_hosted or not spec.needs_public_url)


@functools.lru_cache(maxsize=1024)
def offered(registry: Registry, disabled: frozenset[str], files_hosted: bool) -> Mapping[str, tuple[ModelSpec, ...]]:
    """Category → the models a tenant with these settings offers. Every menu asks; the answer only
    changes with the tenant's config, so it is computed once per distinct config."""
    return MappingProxyType(
        {
            category: tuple(m for m in registry.by_category(category) if _visible(m, disabled, files_hosted))
            for category, _ in registry.categories()
        }
    )


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

    def t(self, key: str, /, **values: object) -> str:
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
        return spec.sellable and _visible(spec, self.tenant.disabled_models, self._files_hosted)

    def models(self, category: str) -> tuple[ModelSpec, ...]:
        return offered(self.services.registry, self.tenant.disabled_models, self._files_hosted).get(category, ())

    def categories(self) -> list[tuple[str, int]]:
        """(category, number of models this tenant offers in it) for the categories it offers at all."""
        offer = offered(self.services.registry, self.tenant.disabled_models, self._files_hosted)
        return [(category, len(models)) for category, models in offer.items() if models]

    @property
    def offers_free(self) -> bool:
        """Some model this tenant offers is free (so its users have a free daily quota to see)."""
        offer = offered(self.services.registry, self.tenant.disabled_models, self._files_hosted)
        return any(spec.free for models in offer.values() for spec in models)

    @property
    def _files_hosted(self) -> bool:
        return bool(self.services.settings.public_base_url)

    @property
    def star_packages(self) -> list[tuple[int, int]]:
        """(Stars, minor units credited) per top-up package: the tenant's own, else the platform's."""
        packages = self.tenant.stars_packages or self.services.settings.star_packages
        return [(stars, stars * self.star_rate) for stars in packages]

    @property
    def star_rate(self) -> int:
        """Minor units credited per Star: the tenant's own rate, else the platform's."""
        return self.tenant.stars_rate_minor or self.services.settings.stars_rate_minor

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
            # No user (a channel post, a message sent on behalf of a chat, some service messages): every
            # handler and filter of the shop needs one (`ctx`), and without one aiogram called the admin
            # filter without its argument: a TypeError and a failed update. Nothing to do for nobody.
            return UNHANDLED
        config = runtime.config
        services = runtime.services
        arrival: Arrival | None = data.get("arrival")
        user = arrival.user if arrival is not None else None  # touched in the update's arrival statement
        if user is None:
            user = await services.users.touch(
                config.id,
                sender.id,
                language=pick_language(sender.language_code, config.default_language),
                first_name=sender.first_name,
                username=sender.username,
                welcome=config.welcome_bonus > 0,
            )
        ctx = Ctx(runtime=runtime, user=user, lang=user.language, correlation_id=data["correlation_id"])
        data["ctx"] = ctx
        # Granted when the user has no welcome entry yet (not "this update created the user": a retry after
        # a database error finds the user already there), and announced whatever the first message was.
        if (
            user.welcome_due
            and not user.banned
            and await services.ledger.grant_welcome_bonus(config.id, sender.id, config.welcome_bonus)
        ):
            balance = await services.ledger.balance(config.id, sender.id)
            with contextlib.suppress(TelegramAPIError, TimeoutError):
                await data["bot"].send_message(
                    sender.id,
                    ctx.t(
                        "welcome_bonus", amount=ctx.money(config.welcome_bonus), balance=ctx.money(balance.available)
                    ),
                )
        return await handler(event, data)
