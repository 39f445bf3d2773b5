"""/admin → Settings: the shop's own words, set by its admins (the operator's `tenants update --welcome-file
...` sets the same): welcome, help and the Telegram descriptions per language, and the support contact.

Each text is checked as Telegram will check it (shop_profile.parse_text) before it is written; a refused
one says why and the admin stays on the step. `-` puts the product's default back.
"""

from __future__ import annotations

import html
from dataclasses import replace

from aiogram import Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from shared.logs import get_logger
from tenant_runtime.shop_profile import LANGUAGES, ProfileError, ShopProfile, TextField, parse_support, parse_text
from tenant_runtime.telegram import screens
from tenant_runtime.telegram.callback_data import AdminCb, ProfileCb
from tenant_runtime.telegram.context import Ctx
from tenant_runtime.telegram.filters import PLAIN_TEXT
from tenant_runtime.telegram.handlers.admin import is_admin
from tenant_runtime.tenant_settings import set_support, set_text

__all__ = ["router"]

log = get_logger(__name__)
router = Router(name="admin_settings")
router.message.filter(is_admin)
router.callback_query.filter(is_admin)

RESET = "-"
SUPPORT = "support"


class Settings(StatesGroup):
    value = State()  # data: {"field": TextField value or "support", "lang": "ru" | "en" | ""}


def _keyboard(ctx: Ctx) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for text_field in TextField:
        for lang in LANGUAGES:
            label = ctx.t("settings.field", field=ctx.t(f"settings.{text_field.value}"), lang=lang.upper())
            kb.button(text=label, callback_data=ProfileCb(field=text_field.value, lang=lang))
    kb.button(text=ctx.t("settings.support"), callback_data=ProfileCb(field=SUPPORT))
    kb.button(text=ctx.t("btn.back"), callback_data=AdminCb(action="home"))
    kb.adjust(2, 2, 2, 2, 1, 1)
    return kb.as_markup()


def settings_screen(ctx: Ctx) -> tuple[str, InlineKeyboardMarkup]:
    profile = ctx.tenant.profile
    lines = [ctx.t("settings.title")]
    for text_field in TextField:
        set_in = [lang.upper() for lang in LANGUAGES if profile.text(lang, text_field)]
        state = ", ".join(set_in) if set_in else ctx.t("settings.default")
        lines.append(f"• {ctx.t(f'settings.{text_field.value}')}: {state}")
    lines.append(f"• {ctx.t('settings.support')}: {profile.support_url or ctx.t('settings.none')}")
    return html.escape("\n".join(lines)), _keyboard(ctx)


@router.callback_query(ProfileCb.filter())
async def choose(query: CallbackQuery, callback_data: ProfileCb, ctx: Ctx, state: FSMContext) -> None:
    await query.answer()
    known = callback_data.field == SUPPORT or (
        callback_data.field in {f.value for f in TextField} and callback_data.lang in LANGUAGES
    )
    if not known or not isinstance(query.message, Message):
        return
    await state.set_state(Settings.value)
    await state.set_data({"field": callback_data.field, "lang": callback_data.lang})
    if callback_data.field == SUPPORT:
        await query.message.answer(ctx.t("settings.ask_support"))
        return
    text_field = TextField(callback_data.field)
    key = "settings.ask_html" if text_field.html else "settings.ask_plain"
    await query.message.answer(ctx.t(key, limit=text_field.limit, lang=callback_data.lang.upper()))


@router.message(StateFilter(Settings.value), PLAIN_TEXT)
async def got_value(message: Message, ctx: Ctx, state: FSMContext) -> None:
    data = await state.get_data()
    field = data.get("field", "")
    # Welcome and help keep the admin's formatting (bold, links) as HTML; the rest is plain text.
    formatted = field in {f.value for f in TextField} and TextField(field).html
    raw = message.html_text if formatted else (message.text or "")
    reset = (message.text or "").strip() == RESET
    try:
        profile = await _apply(ctx, field, data.get("lang", ""), None if reset else raw)
    except ProfileError as exc:
        await message.answer(ctx.t("settings.refused", problem=str(exc)))
        return
    await state.clear()
    # The change reaches every process by NOTIFY; this one shows it at once.
    ctx.runtime.reconfigure(replace(ctx.tenant, profile=profile))
    log.info("shop text changed by its admin", tenant=ctx.tenant.slug, field=field, admin=ctx.user.user_id)
    await message.answer(ctx.t("settings.saved"))
    await screens.show(message, settings_screen(ctx), edit=False)


async def _apply(ctx: Ctx, field: str, lang: str, value: str | None) -> ShopProfile:
    pool, tenant = ctx.services.pool, ctx.tenant
    if field == SUPPORT:
        return await set_support(pool, tenant.id, parse_support(value) if value is not None else None)
    text_field = TextField(field)
    return await set_text(pool, tenant.id, lang, field, parse_text(text_field, value) if value is not None else None)
