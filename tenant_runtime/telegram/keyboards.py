"""Inline keyboards, built with aiogram's builder from the text catalog and callback factories."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from urllib.parse import quote

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from shared.registry import FieldSpec, ModelSpec
from tenant_runtime.config import Language
from tenant_runtime.telegram.callback_data import (
    AdminCb,
    AdminUserCb,
    BanCb,
    CastCb,
    CategoryCb,
    ExportCb,
    FollowCb,
    GenerateCb,
    HistoryCb,
    HistoryItemCb,
    JobCb,
    MenuCb,
    ModelCb,
    PromoCb,
    TopupCb,
    ValueCb,
    WizardCb,
)
from tenant_runtime.telegram.context import Ctx
from tenant_runtime.telegram.option_labels import option_label
from tenant_runtime.telegram.texts import text
from tenant_runtime.users import BotUser

PAGE_SIZE = 8


def main_menu(ctx: Ctx) -> InlineKeyboardMarkup:
    return _main_menu(ctx.lang, tuple(ctx.categories()))


@functools.lru_cache(maxsize=256)
def _main_menu(lang: Language, categories: tuple[tuple[str, int], ...]) -> InlineKeyboardMarkup:
    # Shared by every user of every tenant with the same offer: aiogram's markups are frozen, and
    # building this one (callback packing, the builder's deep copies) cost more than the rest of /start.
    kb = InlineKeyboardBuilder()
    for category, count in categories:
        kb.button(text=f"{text(lang, 'cat.' + category)} ({count})", callback_data=CategoryCb(category=category))
    for action, key in (
        ("balance", "btn.balance"),
        ("topup", "btn.topup"),
        ("history", "btn.history"),
        ("invite", "btn.invite"),
        ("help", "btn.help"),
        ("lang", "btn.language"),
    ):
        kb.button(text=text(lang, key), callback_data=MenuCb(action=action))
    kb.adjust(2)
    return kb.as_markup()


def invite(ctx: Ctx, link: str) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=ctx.t("btn.share"), url=f"https://t.me/share/url?url={quote(link, safe='')}")
    kb.button(text=ctx.t("btn.menu"), callback_data=MenuCb(action="main"))
    kb.adjust(1)
    return kb.as_markup()


def to_menu(ctx: Ctx) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=ctx.t("btn.menu"), callback_data=MenuCb(action="main"))
    return kb.as_markup()


def catalog_page(ctx: Ctx, category: str, models: Sequence[ModelSpec], page: int) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for spec in models[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]:
        label = ctx.t(
            "catalog.model_button",
            title=spec.title.ru if ctx.lang == "ru" else spec.title.en,
            price=ctx.price_label(spec),
        )
        kb.button(text=label, callback_data=ModelCb(model=spec.id))
    kb.adjust(1)
    pages = max(1, -(-len(models) // PAGE_SIZE))
    nav = InlineKeyboardBuilder()
    if page > 0:
        nav.button(text=ctx.t("btn.prev"), callback_data=CategoryCb(category=category, page=page - 1))
    if page + 1 < pages:
        nav.button(text=ctx.t("btn.next"), callback_data=CategoryCb(category=category, page=page + 1))
    nav.button(text=ctx.t("btn.menu"), callback_data=MenuCb(action="main"))
    kb.attach(nav)
    return kb.as_markup()


def model_card(ctx: Ctx, spec: ModelSpec) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=ctx.t("btn.choose"), callback_data=ModelCb(model=spec.id, choose=True))
    kb.button(text=ctx.t("btn.back"), callback_data=CategoryCb(category=spec.category))
    kb.adjust(1)
    return kb.as_markup()


def field_step(ctx: Ctx, field: FieldSpec, step: int, *, files_received: int = 0) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    if field.type == "enum":
        for index, value in enumerate(field.values or ()):
            kb.button(text=option_label(field.name, value, ctx.lang), callback_data=ValueCb(step=step, index=index))
        kb.adjust(3 if len(field.values or ()) > 4 else 2)
    elif field.type == "bool":
        kb.button(text=ctx.t("btn.yes"), callback_data=ValueCb(step=step, index=1))
        kb.button(text=ctx.t("btn.no"), callback_data=ValueCb(step=step, index=0))
        kb.adjust(2)
    extra = InlineKeyboardBuilder()
    if field.type == "image_urls" and files_received:
        extra.button(text=ctx.t("btn.done_images"), callback_data=WizardCb(action="more"))
    if not field.required:
        extra.button(text=ctx.t("btn.skip"), callback_data=ValueCb(step=step, index=-1))
    extra.adjust(1)
    nav = InlineKeyboardBuilder()
    nav.button(text=ctx.t("btn.back"), callback_data=WizardCb(action="back"))
    nav.button(text=ctx.t("btn.cancel"), callback_data=WizardCb(action="cancel"))
    kb.attach(extra)
    kb.attach(nav)
    return kb.as_markup()


def confirm(ctx: Ctx, draft: str, *, enough: bool) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    if enough:
        kb.button(text=ctx.t("btn.generate"), callback_data=GenerateCb(draft=draft))
    else:
        kb.button(text=ctx.t("btn.topup"), callback_data=MenuCb(action="topup"))
    kb.button(text=ctx.t("btn.edit"), callback_data=WizardCb(action="edit"))
    kb.button(text=ctx.t("btn.cancel"), callback_data=WizardCb(action="cancel"))
    kb.adjust(1, 2)
    return kb.as_markup()


def result(
    job_id: int, t: TextFn, *, follow_ups: Sequence[tuple[ModelSpec, int]] = (), repeatable: bool = True
) -> InlineKeyboardMarkup:
    """Under a result: its follow-ups (`(model, results)`: one button, or one per result numbered from
    1), then Repeat and Change parameters (not for a follow-up's own result), then the menu."""
    kb = InlineKeyboardBuilder()
    for spec, results in follow_ups:
        assert spec.follow_up is not None
        label = spec.follow_up.label.ru if t.lang == "ru" else spec.follow_up.label.en
        row = InlineKeyboardBuilder()
        if spec.follow_up.per_output:
            for index in range(1, results + 1):
                row.button(text=f"{label} {index}", callback_data=FollowCb(job=job_id, model=spec.id, index=index))
        else:
            row.button(text=label, callback_data=FollowCb(job=job_id, model=spec.id))
        row.adjust(4)
        kb.attach(row)
    tail = InlineKeyboardBuilder()
    if repeatable:
        tail.button(text=t("btn.repeat"), callback_data=JobCb(action="repeat", job=job_id))
        tail.button(text=t("btn.change"), callback_data=JobCb(action="change", job=job_id))
    tail.button(text=t("btn.menu"), callback_data=MenuCb(action="main"))
    if repeatable:
        tail.adjust(2, 1)
    kb.attach(tail)
    return kb.as_markup()


def failure(job_id: int, t: TextFn, support_url: str | None = None) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=t("btn.retry"), callback_data=JobCb(action="retry", job=job_id))
    if support_url:
        kb.button(text=t("btn.support"), url=support_url)
    kb.button(text=t("btn.menu"), callback_data=MenuCb(action="main"))
    kb.adjust(1)
    return kb.as_markup()


def with_support(ctx: Ctx) -> InlineKeyboardMarkup:
    """Support (when the shop has a contact) and the main menu: where the bot promises help."""
    kb = InlineKeyboardBuilder()
    if ctx.tenant.profile.support_url:
        kb.button(text=ctx.t("btn.support"), url=ctx.tenant.profile.support_url)
    kb.button(text=ctx.t("btn.menu"), callback_data=MenuCb(action="main"))
    kb.adjust(1)
    return kb.as_markup()


def history(ctx: Ctx, page: int, has_more: bool, items: Sequence[tuple[int, str]] = ()) -> InlineKeyboardMarkup:
    """One button per listed job (its card), then the pages and the menu."""
    kb = InlineKeyboardBuilder()
    for job_id, label in items:
        kb.button(text=label, callback_data=HistoryItemCb(job=job_id))
    nav = 0
    if page > 0:
        kb.button(text=ctx.t("btn.prev"), callback_data=HistoryCb(page=page - 1))
        nav += 1
    if has_more:
        kb.button(text=ctx.t("btn.next"), callback_data=HistoryCb(page=page + 1))
        nav += 1
    kb.button(text=ctx.t("btn.menu"), callback_data=MenuCb(action="main"))
    kb.adjust(*([1] * len(items)), *([nav] if nav else []), 1)
    return kb.as_markup()


def job_card(ctx: Ctx, job_id: int, *, download: bool) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=ctx.t("btn.repeat"), callback_data=JobCb(action="repeat", job=job_id))
    kb.button(text=ctx.t("btn.change"), callback_data=JobCb(action="change", job=job_id))
    if download:
        kb.button(text=ctx.t("btn.download"), callback_data=JobCb(action="download", job=job_id))
    kb.button(text=ctx.t("btn.history"), callback_data=HistoryCb(page=0))
    kb.adjust(1)
    return kb.as_markup()


def topup(ctx: Ctx, packages: list[tuple[int, int]]) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for stars, amount in packages:
        kb.button(
            text=ctx.t("topup.package", stars=stars, amount=ctx.money(amount)), callback_data=TopupCb(stars=stars)
        )
    kb.button(text=ctx.t("topup.custom"), callback_data=TopupCb(stars=0))
    kb.button(text=ctx.t("btn.menu"), callback_data=MenuCb(action="main"))
    kb.adjust(1)
    return kb.as_markup()


def user_matches(users: Sequence[BotUser]) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for user in users:
        who = " ".join(part for part in (user.first_name or "", f"@{user.username}" if user.username else "") if part)
        kb.button(
            text=f"{who} · {user.user_id}" if who else str(user.user_id), callback_data=AdminUserCb(user=user.user_id)
        )
    kb.adjust(1)
    return kb.as_markup()


def admin_home(ctx: Ctx) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for action in ("stats", "user", "credit", "debit", "models", "markup", "refund"):
        kb.button(text=ctx.t(f"admin.btn.{action}"), callback_data=AdminCb(action=action))
    kb.button(text=ctx.t("admin.btn.promos"), callback_data=PromoCb(action="list"))
    kb.button(text=ctx.t("admin.btn.broadcast"), callback_data=CastCb(action="new"))
    kb.button(text=ctx.t("admin.btn.export"), callback_data=ExportCb())
    kb.button(text=ctx.t("admin.btn.settings"), callback_data=AdminCb(action="settings"))
    kb.adjust(2)
    return kb.as_markup()


def admin_user(ctx: Ctx, user_id: int, *, banned: bool, admin: bool) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    if banned:
        kb.button(text=ctx.t("admin.btn.unban"), callback_data=BanCb(user=user_id, ban=False))
    elif not admin:
        kb.button(text=ctx.t("admin.btn.ban"), callback_data=BanCb(user=user_id, ban=True))
    kb.button(text=ctx.t("btn.back"), callback_data=AdminCb(action="home"))
    kb.adjust(1)
    return kb.as_markup()


def admin_promos(ctx: Ctx, active: Sequence[str]) -> InlineKeyboardMarkup:
    """➕ New, 🚫 <code> to disable each active code, back to /admin."""
    kb = InlineKeyboardBuilder()
    kb.button(text=ctx.t("admin.btn.promo_new"), callback_data=PromoCb(action="new"))
    for code in active:
        kb.button(text=ctx.t("admin.btn.promo_disable", code=code), callback_data=PromoCb(action="disable", code=code))
    kb.button(text=ctx.t("btn.back"), callback_data=AdminCb(action="home"))
    kb.adjust(1)
    return kb.as_markup()


def admin_models(ctx: Ctx, models: list[ModelSpec], page: int) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for spec in models[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]:
        mark = "🚫" if spec.id in ctx.tenant.disabled_models else "✅"
        kb.button(text=f"{mark} {spec.id}", callback_data=AdminCb(action="toggle", model=spec.id, page=page))
    kb.adjust(1)
    nav = InlineKeyboardBuilder()
    if page > 0:
        nav.button(text=ctx.t("btn.prev"), callback_data=AdminCb(action="models", page=page - 1))
    if (page + 1) * PAGE_SIZE < len(models):
        nav.button(text=ctx.t("btn.next"), callback_data=AdminCb(action="models", page=page + 1))
    nav.button(text=ctx.t("btn.back"), callback_data=AdminCb(action="home"))
    kb.attach(nav)
    return kb.as_markup()


class TextFn:
    """A text lookup bound to a language (for code that has a job, not a handler context)."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __call__(self, key: str, /, **values: object) -> str:
        from tenant_runtime.telegram.texts import text

        return text("en" if self.lang == "en" else "ru", key, **values)
