"""Screens shown from several places: the main menu, a category page, a model card, balance, history."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup, Message

from shared.registry import ModelSpec
from tenant_runtime import keyboards
from tenant_runtime.context import Ctx
from tenant_runtime.texts import Raw

Screen = tuple[str, InlineKeyboardMarkup]
HISTORY_PAGE = 10


def title(ctx: Ctx, spec: ModelSpec) -> str:
    return spec.title.ru if ctx.lang == "ru" else spec.title.en


async def main_menu(ctx: Ctx) -> Screen:
    balance = await ctx.services.ledger.balance(ctx.tenant.id, ctx.user.user_id)
    return (
        ctx.t("menu.title", shop=ctx.tenant.display_name, balance=ctx.money(balance.available)),
        keyboards.main_menu(ctx),
    )


def category(ctx: Ctx, name: str, page: int) -> Screen:
    models = ctx.models(name)
    pages = max(1, -(-len(models) // keyboards.PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    return (
        ctx.t("catalog.title", category=ctx.t("cat." + name), page=page + 1, pages=pages),
        keyboards.catalog_page(ctx, name, models, page),
    )


def model_card(ctx: Ctx, spec: ModelSpec) -> Screen:
    needs = ", ".join((f.label.ru if ctx.lang == "ru" else f.label.en).lower() for f in spec.inputs if f.required)
    description = spec.description.ru if ctx.lang == "ru" else spec.description.en
    return (
        ctx.t("card", title=title(ctx, spec), description=description, price=ctx.price_label(spec), needs=needs),
        keyboards.model_card(ctx, spec),
    )


async def balance(ctx: Ctx) -> Screen:
    found = await ctx.services.ledger.balance(ctx.tenant.id, ctx.user.user_id)
    return ctx.t("balance", available=ctx.money(found.available), held=ctx.money(found.held)), keyboards.to_menu(ctx)


async def history(ctx: Ctx, page: int) -> Screen:
    jobs = await ctx.services.jobs.recent(ctx.tenant.id, ctx.user.user_id, HISTORY_PAGE + 1, page * HISTORY_PAGE)
    lines = [ctx.t("history.title", page=page + 1)]
    if not jobs:
        lines.append(ctx.t("history.empty"))
    for job in jobs[:HISTORY_PAGE]:
        spec = ctx.services.registry.get(job.model)
        lines.append(
            ctx.t(
                "history.row",
                date=job.created_at.strftime("%d.%m %H:%M"),
                title=title(ctx, spec) if spec else job.model,
                status=ctx.t("status." + job.status),
                price=ctx.money(job.price),
            )
        )
    if page == 0:
        credits = [
            e
            for e in await ctx.services.ledger.history(ctx.tenant.id, ctx.user.user_id, limit=50)
            if e.available_delta > 0 and e.kind not in ("release", "expiry")
        ][:5]
        if credits:
            lines.append("")
            lines.append(ctx.t("history.topups"))
            lines += [
                ctx.t(
                    "history.topup_row",
                    date=e.created_at.strftime("%d.%m %H:%M"),
                    amount=ctx.money(e.amount),
                    kind=e.kind,
                )
                for e in credits
            ]
    return Raw("\n".join(lines)), keyboards.history(ctx, page, has_more=len(jobs) > HISTORY_PAGE)


async def show(message: Message, screen: Screen, *, edit: bool) -> None:
    """Edit the message in place when it is ours (a button was pressed), else send a new one."""
    text, markup = screen
    if edit:
        from aiogram.exceptions import TelegramBadRequest

        try:
            await message.edit_text(text, reply_markup=markup)
            return
        except TelegramBadRequest as exc:
            if "not modified" in exc.message:
                return
    await message.answer(text, reply_markup=markup)
