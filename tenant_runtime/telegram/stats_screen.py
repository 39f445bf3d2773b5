"""/admin → Statistics: the shop's numbers for today, 7 or 30 days (tenant_runtime.analytics)."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from tenant_runtime.analytics import Period, ShopStats, shop_stats
from tenant_runtime.telegram.callback_data import AdminCb
from tenant_runtime.telegram.context import Ctx

__all__ = ["stats_screen"]

MODELS_SHOWN = 10


async def stats_screen(ctx: Ctx, period: Period) -> tuple[str, InlineKeyboardMarkup]:
    stats = await shop_stats(ctx.services.pool, ctx.tenant.id, ctx.tenant.limits.timezone, period)
    return _body(ctx, stats), _keyboard(ctx, period)


def _body(ctx: Ctx, stats: ShopStats) -> str:
    lines = [
        ctx.t(
            "stats.title",
            period=ctx.t(f"stats.period.{stats.period.value}"),
            since=stats.since.strftime("%d.%m.%Y"),
            timezone=ctx.tenant.limits.timezone,
        ),
        ctx.t(
            "stats.money",
            revenue=ctx.money(stats.revenue),
            paying=stats.paying_users,
            spend=ctx.money(stats.spend),
            new_users=stats.new_users,
        ),
        ctx.t("stats.generations", count=stats.generations, credits=f"{stats.kie_credits.normalize():f}"),
    ]
    registry = ctx.services.registry
    for model in stats.models[:MODELS_SHOWN]:
        spec = registry.get(model.model)
        title = (spec.title.ru if ctx.lang == "ru" else spec.title.en) if spec else model.model
        lines.append(
            ctx.t(
                "stats.model",
                title=title,
                count=model.generations,
                rate=round(model.success_rate * 100),
                returned=ctx.money(model.returned),
            )
        )
    return "\n".join(lines)


def _keyboard(ctx: Ctx, shown: Period) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for period in Period:
        mark = "• " if period is shown else ""
        kb.button(
            text=mark + ctx.t(f"stats.period.{period.value}"), callback_data=AdminCb(action="stats", model=period)
        )
    kb.button(text=ctx.t("btn.back"), callback_data=AdminCb(action="home"))
    kb.adjust(3, 1)
    return kb.as_markup()
