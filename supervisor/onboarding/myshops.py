"""/myshops: an owner's shops with their state, and what the owner may change: the KIE key, pause and
resume, another admin. Every press names a tenant id; `OwnerShops` refuses any shop that is not the
presser's own with the same answer as a shop that does not exist.
"""

from __future__ import annotations

import html
from contextlib import suppress

from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from shared import strict
from supervisor.onboarding.checks import Refusal, check_kie_key
from supervisor.onboarding.flow import ANSWER, EditShop, MyShopCb, Onboarding, ShopAction
from supervisor.onboarding.shops import MAX_ADMINS, NotYours, Taken
from supervisor.onboarding.texts import Language, language_of, text
from supervisor.validation import TELEGRAM_ID_DIGITS
from tenant_runtime.config import TenantConfig, TenantStatus

__all__ = ["router"]

router = Router(name="myshops")
router.message.filter(F.chat.type == "private")


def _lang(event: Message | CallbackQuery) -> Language:
    return language_of(event.from_user.language_code if event.from_user else None)


def _keyboard(lang: Language, shops: list[TenantConfig]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    sizes = []
    for shop in shops:
        row = [ShopAction.KIE_KEY, ShopAction.ADMIN]
        if shop.status is TenantStatus.ENABLED:
            row.append(ShopAction.PAUSE)
        elif shop.status is TenantStatus.PAUSED:
            row.append(ShopAction.RESUME)
        elif shop.status is TenantStatus.PENDING:
            continue  # nothing to change before an operator has decided
        label = {
            ShopAction.KIE_KEY: "btn_key",
            ShopAction.ADMIN: "btn_admin",
            ShopAction.PAUSE: "btn_pause",
            ShopAction.RESUME: "btn_resume",
        }
        for action in row:
            builder.button(
                text=text(lang, label[action], slug=shop.slug), callback_data=MyShopCb(action=action, tenant_id=shop.id)
            )
        sizes.append(len(row))
    builder.adjust(*sizes)
    return builder.as_markup()


@router.message(Command("myshops"))
async def my_shops(message: Message, state: FSMContext, onboarding: Onboarding) -> None:
    lang = _lang(message)
    assert message.from_user is not None
    await state.clear()
    shops = await onboarding.shops.owned(message.from_user.id)
    if not shops:
        await message.answer(text(lang, "no_shops"))
        return
    lines = [text(lang, "shops_header")]
    for shop in shops:
        state_text = text(lang, f"state.{shop.status.value}")
        lines.append(text(lang, "shop_line", name=html.escape(shop.display_name), slug=shop.slug, state=state_text))
    await message.answer("\n".join(lines), reply_markup=_keyboard(lang, shops))


@router.callback_query(MyShopCb.filter())
async def shop_action(query: CallbackQuery, callback_data: MyShopCb, state: FSMContext, onboarding: Onboarding) -> None:
    lang = _lang(query)
    owner, tenant_id = query.from_user.id, callback_data.tenant_id
    shop = next((s for s in await onboarding.shops.owned(owner) if s.id == tenant_id), None)
    if shop is None or not isinstance(query.message, Message):
        await query.answer(text(lang, "not_yours"), show_alert=True)
        return
    await query.answer()
    if callback_data.action in (ShopAction.KIE_KEY, ShopAction.ADMIN):
        asking = EditShop.kie_key if callback_data.action is ShopAction.KIE_KEY else EditShop.admin
        await state.set_state(asking)
        await state.set_data({"tenant_id": tenant_id})
        key = "ask_new_kie_key" if asking is EditShop.kie_key else "ask_admin"
        await query.message.answer(text(lang, key, slug=shop.slug))
        return
    pausing = callback_data.action is ShopAction.PAUSE
    changed = await (onboarding.shops.pause if pausing else onboarding.shops.resume)(owner, tenant_id)
    if changed is None:
        await query.message.answer(text(lang, "cannot_change_state", state=text(lang, f"state.{shop.status.value}")))
        return
    await query.message.answer(text(lang, "paused" if pausing else "resumed", slug=shop.slug))


@router.message(EditShop.kie_key, ANSWER)
async def new_kie_key(message: Message, state: FSMContext, onboarding: Onboarding) -> None:
    lang = _lang(message)
    assert message.from_user is not None
    with suppress(TelegramAPIError):
        await message.delete()  # it holds a secret
    try:
        key, _ = await check_kie_key(onboarding.kie, message.text or "")
        shop = await onboarding.shops.set_kie_key(message.from_user.id, int((await state.get_data())["tenant_id"]), key)
    except Refusal as refusal:
        await message.answer(text(lang, refusal.key))
        return
    except NotYours:
        await state.clear()
        await message.answer(text(lang, "not_yours"))
        return
    await state.clear()
    await message.answer(text(lang, "kie_key_changed", slug=shop.slug))


@router.message(EditShop.admin, ANSWER)
async def new_admin(message: Message, state: FSMContext, onboarding: Onboarding) -> None:
    lang = _lang(message)
    assert message.from_user is not None
    admin = strict.uint((message.text or "").strip(), max_digits=TELEGRAM_ID_DIGITS)
    if not admin:
        await message.answer(text(lang, "bad_admin"))
        return
    tenant_id = int((await state.get_data())["tenant_id"])
    try:
        shop, added = await onboarding.shops.add_admin(message.from_user.id, tenant_id, admin)
    except NotYours:
        await state.clear()
        await message.answer(text(lang, "not_yours"))
        return
    except Taken:
        await state.clear()
        await message.answer(text(lang, "too_many_admins", max=MAX_ADMINS))
        return
    await state.clear()
    await message.answer(text(lang, "admin_added" if added else "admin_already", admin=admin, slug=shop.slug))
