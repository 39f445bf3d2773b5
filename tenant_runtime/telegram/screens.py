"""Screens shown from several places: the main menu, a category page, a model card, balance, history."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

from aiogram.types import InlineKeyboardMarkup, Message

from shared.registry import ModelSpec
from tenant_runtime.generation.job import Job, JobStatus
from tenant_runtime.limits.job_limits import FreeAllowance, balance_and_allowance, free_allowance
from tenant_runtime.shop_profile import TextField
from tenant_runtime.telegram import keyboards
from tenant_runtime.telegram.context import Ctx
from tenant_runtime.telegram.limit_texts import free_line
from tenant_runtime.telegram.texts import Raw
from tenant_runtime.telegram.wizard_fields import field_label, labelled, shown

Screen = tuple[str, InlineKeyboardMarkup]
HISTORY_PAGE = 10
RESULTS_KEPT = timedelta(hours=24)


def title(ctx: Ctx, spec: ModelSpec) -> str:
    return spec.title.ru if ctx.lang == "ru" else spec.title.en


async def free_left(ctx: Ctx) -> FreeAllowance | None:
    """The user's free allowance today, when the tenant offers free models and the user has any."""
    if not ctx.offers_free:
        return None
    return _shown(await free_allowance(ctx.services.pool, ctx.tenant.id, ctx.tenant.limits, ctx.user.user_id))


def _shown(allowance: FreeAllowance) -> FreeAllowance | None:
    """An allowance worth a line: some free generations a day, or some left from a promo code."""
    return None if allowance.daily_limit == 0 and allowance.bonus_left == 0 else allowance


async def main_menu(ctx: Ctx) -> Screen:
    allowance: FreeAllowance | None = None
    if ctx.offers_free:  # the balance and the free allowance in one round trip
        balance, today = await balance_and_allowance(
            ctx.services.pool, ctx.tenant.id, ctx.tenant.limits, ctx.user.user_id
        )
        allowance = _shown(today)
    else:
        balance = await ctx.services.ledger.balance(ctx.tenant.id, ctx.user.user_id)
    welcome = ctx.tenant.profile.text(ctx.lang, TextField.WELCOME)
    if welcome is None:
        body = ctx.t("menu.title", shop=ctx.tenant.display_name, balance=ctx.money(balance.available))
    else:  # checked HTML, set by the shop: shown as written
        body = ctx.t("menu.welcome", welcome=Raw(welcome), balance=ctx.money(balance.available))
    if allowance is not None:
        body = Raw(f"{body}\n{free_line(ctx.lang, allowance)}")
    return body, keyboards.main_menu(ctx)


REFERRAL_PREFIX = "ref_"  # /start ref_<code>: the link a user shares


async def referral_link(ctx: Ctx) -> str:
    me = await ctx.runtime.bot.me()
    return f"https://t.me/{me.username}?start={REFERRAL_PREFIX}{ctx.user.referral_code}"


async def invite(ctx: Ctx) -> Screen:
    """The user's link, who joined with it, what it earned them, and what a friend gets."""
    link = await referral_link(ctx)
    tenant, services = ctx.tenant, ctx.services
    lines = [
        ctx.t("invite.title"),
        ctx.t("invite.link", link=link),
        ctx.t(
            "invite.stats",
            joined=await services.users.referred_count(tenant.id, ctx.user.user_id),
            earned=ctx.money(await services.ledger.referral_earnings(tenant.id, ctx.user.user_id)),
        ),
    ]
    if tenant.referral_bonus:
        lines.append(ctx.t("invite.bonus", amount=ctx.money(tenant.referral_bonus)))
    if tenant.referral_bonus_invited:
        lines.append(ctx.t("invite.bonus_invited", amount=ctx.money(tenant.referral_bonus_invited)))
    return "\n\n".join(lines), keyboards.invite(ctx, link)


def help_text(ctx: Ctx) -> str:
    """The shop's own help when it set one for this language, else the product's."""
    return ctx.tenant.profile.text(ctx.lang, TextField.HELP) or ctx.t("help")


def category(ctx: Ctx, name: str, page: int) -> Screen:
    models = ctx.models(name)
    pages = max(1, -(-len(models) // keyboards.PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    return (
        ctx.t("catalog.title", category=ctx.t("cat." + name), page=page + 1, pages=pages),
        keyboards.catalog_page(ctx, name, models, page),
    )


async def model_card(ctx: Ctx, spec: ModelSpec) -> Screen:
    needs = ", ".join(
        (f.label.ru if ctx.lang == "ru" else f.label.en).lower()
        for f in spec.inputs
        if f.required and not f.internal and f.when is None
    )
    description = spec.description.ru if ctx.lang == "ru" else spec.description.en
    body = ctx.t("card", title=title(ctx, spec), description=description, price=ctx.price_label(spec))
    if needs:  # a model whose every question depends on an earlier answer (Suno) lists none up front
        body = Raw(f"{body}\n{ctx.t('card.needs', needs=needs)}")
    allowance = await free_left(ctx) if spec.free else None
    if allowance is not None:
        body = Raw(f"{body}\n{free_line(ctx.lang, allowance)}")
    return body, keyboards.model_card(ctx, spec)


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
    items = [
        (
            job.id,
            ctx.t(
                "history.item",
                n=page * HISTORY_PAGE + i + 1,
                title=title(ctx, spec) if (spec := ctx.services.registry.get(job.model)) else job.model,
            ),
        )
        for i, job in enumerate(jobs[:HISTORY_PAGE])
    ]
    return Raw("\n".join(lines)), keyboards.history(ctx, page, has_more=len(jobs) > HISTORY_PAGE, items=items)


def results_available(job: Job) -> bool:
    """KIE keeps result files for a limited time (24 h at least): links older than that are not offered."""
    finished = job.finished_at
    return bool(job.result_urls) and finished is not None and datetime.now(UTC) - finished < RESULTS_KEPT


def job_card(ctx: Ctx, job: Job) -> Screen:
    """One past generation: model, parameters, price, status, date; repeat, change, download again."""
    spec = ctx.services.registry.get(job.model)
    params = [
        f"• {labelled(field_label(ctx, field), shown(ctx, field, job.params[field.name]))}"
        for field in (spec.inputs if spec else ())
        if not field.internal and field.name in job.params
    ]
    body = ctx.t(
        "history.card",
        title=title(ctx, spec) if spec else job.model,
        date=job.created_at.strftime("%d.%m.%Y %H:%M"),
        status=ctx.t("status." + job.status),
        # A failed job's hold was released in the same transaction that failed it: the money is back.
        price=ctx.t("history.returned", price=ctx.money(job.price))
        if job.status == JobStatus.FAILED and job.price > 0
        else ctx.money(job.price),
    )
    if params:
        body = Raw(f"{body}\n" + html.escape("\n".join(params)))
    return body, keyboards.job_card(ctx, job.id, download=results_available(job))


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
