"""/newshop: name -> slug -> bot token -> KIE key -> language -> markup -> summary -> created.

Nothing is written to `tenants` before the owner presses Create: a flow abandoned half-way leaves no
tenant (only its draft, which expires). Each refused input says why and asks again; the step stays.
Messages holding a secret are deleted as soon as they are read, whatever the check says.
"""

from __future__ import annotations

import html
from contextlib import suppress
from decimal import Decimal

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from shared.logs import get_logger
from supervisor.onboarding.checks import Refusal, check_bot_token, check_kie_key, suggest_slug
from supervisor.onboarding.flow import ANSWER, MARKUP_CHOICES, MAX_NAME_CHARS, FlowCb, FlowStep, NewShop, Onboarding
from supervisor.onboarding.notify import tell_operators_of
from supervisor.onboarding.shops import ShopRequest, Taken
from supervisor.onboarding.texts import Language, language_of, text
from supervisor.validation import SLUG_RE, InputError, parse_bot_token, parse_markup

__all__ = ["router"]

log = get_logger(__name__)

router = Router(name="newshop")
router.message.filter(F.chat.type == "private")


def _lang(message: Message | CallbackQuery) -> Language:
    return language_of(message.from_user.language_code if message.from_user else None)


def _buttons(*rows: tuple[str, FlowCb]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for label, data in rows:
        builder.button(text=label, callback_data=data)
    builder.adjust(len(rows) if len(rows) <= 3 else 2)
    return builder.as_markup()


async def _forget(message: Message) -> None:
    """The message holds a secret: gone from the chat at once (best effort; the owner can delete it too)."""
    with suppress(TelegramAPIError):
        await message.delete()


@router.message(Command("newshop"))
async def new_shop(message: Message, state: FSMContext, onboarding: Onboarding) -> None:
    lang = _lang(message)
    assert message.from_user is not None
    pending = await onboarding.shops.pending(message.from_user.id)
    if pending is not None:
        await message.answer(text(lang, "pending_exists", name=html.escape(pending.display_name)))
        return
    await state.clear()
    await state.set_state(NewShop.name)
    await message.answer(text(lang, "ask_name", max=MAX_NAME_CHARS))


@router.message(NewShop.name, ANSWER)
async def got_name(message: Message, state: FSMContext, onboarding: Onboarding) -> None:
    lang = _lang(message)
    name = (message.text or "").strip()
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        await message.answer(text(lang, "bad_name", max=MAX_NAME_CHARS))
        return
    await state.update_data(name=name)
    await state.set_state(NewShop.slug)
    slug = await _free_slug(onboarding, suggest_slug(name))
    if slug is None:
        await message.answer(text(lang, "ask_slug_no_suggestion"))
        return
    keyboard = _buttons((text(lang, "use_slug", slug=slug), FlowCb(step=FlowStep.SLUG, value=slug)))
    await message.answer(text(lang, "ask_slug", slug=slug), reply_markup=keyboard)


async def _free_slug(onboarding: Onboarding, base: str | None) -> str | None:
    if base is None:
        return None
    for n in range(1, 10):
        candidate = base if n == 1 else f"{base[:29]}-{n}"
        if not await onboarding.shops.taken(slug=candidate):
            return candidate
    return None


@router.message(NewShop.slug, ANSWER)
async def got_slug(message: Message, state: FSMContext, onboarding: Onboarding) -> None:
    await _take_slug(message, (message.text or "").strip(), state, onboarding, _lang(message))


@router.callback_query(NewShop.slug, FlowCb.filter(F.step == FlowStep.SLUG))
async def chose_slug(query: CallbackQuery, callback_data: FlowCb, state: FSMContext, onboarding: Onboarding) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await _take_slug(query.message, callback_data.value, state, onboarding, _lang(query))


async def _take_slug(message: Message, slug: str, state: FSMContext, onboarding: Onboarding, lang: Language) -> None:
    if not SLUG_RE.fullmatch(slug):
        await message.answer(text(lang, "bad_slug", slug=html.escape(slug[:40])))
        return
    if await onboarding.shops.taken(slug=slug):
        await message.answer(text(lang, "slug_taken", slug=slug))
        return
    await state.update_data(slug=slug)
    await state.set_state(NewShop.token)
    await message.answer(text(lang, "ask_token"))


@router.message(NewShop.token, ANSWER)
async def got_token(message: Message, state: FSMContext, onboarding: Onboarding) -> None:
    lang = _lang(message)
    assert message.from_user is not None
    await _forget(message)
    try:
        await _not_taken(message.text or "", onboarding)
        found = await check_bot_token(onboarding.settings.telegram_api_base, message.text or "")
    except Refusal as refusal:
        await message.answer(text(lang, refusal.key))
        return
    sealed = onboarding.seal(message.from_user.id, "bot_token", found.token)
    await state.update_data(bot_token=sealed, bot_id=found.bot_id, username=found.username)
    await state.set_state(NewShop.kie_key)
    await message.answer(text(lang, "ask_kie_key", username=found.username))


async def _not_taken(typed: str, onboarding: Onboarding) -> None:
    """A token another tenant already has is refused before Telegram is asked anything."""
    try:
        _, bot_id = parse_bot_token(typed)
    except InputError:
        raise Refusal("bad_token_shape") from None
    if await onboarding.shops.taken(bot_id=bot_id):
        raise Refusal("token_in_use")


@router.message(NewShop.kie_key, ANSWER)
async def got_kie_key(message: Message, state: FSMContext, onboarding: Onboarding) -> None:
    lang = _lang(message)
    assert message.from_user is not None
    await _forget(message)
    try:
        key, credits = await check_kie_key(onboarding.kie, message.text or "")
    except Refusal as refusal:
        await message.answer(text(lang, refusal.key))
        return
    await state.update_data(kie_api_key=onboarding.seal(message.from_user.id, "kie_api_key", key))
    await state.set_state(NewShop.language)
    keyboard = _buttons(
        ("Русский", FlowCb(step=FlowStep.LANGUAGE, value="ru")),
        ("English", FlowCb(step=FlowStep.LANGUAGE, value="en")),
    )
    await message.answer(text(lang, "ask_language", credits=f"{credits:.2f}"), reply_markup=keyboard)


@router.callback_query(NewShop.language, FlowCb.filter(F.step == FlowStep.LANGUAGE))
async def chose_language(query: CallbackQuery, callback_data: FlowCb, state: FSMContext) -> None:
    await query.answer()
    if callback_data.value not in ("ru", "en") or not isinstance(query.message, Message):
        return
    await state.update_data(language=callback_data.value)
    await state.set_state(NewShop.markup)
    choices = [(f"×{m}", FlowCb(step=FlowStep.MARKUP, value=m)) for m in MARKUP_CHOICES]
    await query.message.answer(text(_lang(query), "ask_markup"), reply_markup=_buttons(*choices))


@router.message(NewShop.markup, ANSWER)
async def typed_markup(message: Message, state: FSMContext) -> None:
    await _take_markup(message, (message.text or "").strip().replace(",", "."), state, _lang(message))


@router.callback_query(NewShop.markup, FlowCb.filter(F.step == FlowStep.MARKUP))
async def chose_markup(query: CallbackQuery, callback_data: FlowCb, state: FSMContext) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await _take_markup(query.message, callback_data.value, state, _lang(query))


async def _take_markup(message: Message, value: str, state: FSMContext, lang: Language) -> None:
    try:
        markup = parse_markup(value[:20])
    except InputError:
        await message.answer(text(lang, "bad_markup"))
        return
    data = await state.update_data(markup=str(markup))
    await state.set_state(NewShop.confirm)
    summary = text(
        lang,
        "summary",
        name=html.escape(data["name"]),
        slug=data["slug"],
        username=data["username"],
        language=data["language"],
        markup=markup.normalize(),
    )
    keyboard = _buttons(
        (text(lang, "create"), FlowCb(step=FlowStep.CREATE)), (text(lang, "cancel"), FlowCb(step=FlowStep.CANCEL))
    )
    await message.answer(summary, reply_markup=keyboard)


@router.callback_query(NewShop.confirm, FlowCb.filter(F.step == FlowStep.CANCEL))
async def cancelled(query: CallbackQuery, state: FSMContext) -> None:
    await state.clear()
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(text(_lang(query), "cancelled"))


@router.callback_query(NewShop.confirm, FlowCb.filter(F.step == FlowStep.CREATE))
async def create(query: CallbackQuery, state: FSMContext, onboarding: Onboarding, bot: Bot) -> None:
    lang = _lang(query)
    await query.answer()
    if not isinstance(query.message, Message):
        return
    owner = query.from_user.id
    data = await state.get_data()
    request = ShopRequest(
        owner_id=owner,
        name=data["name"],
        slug=data["slug"],
        bot_token=onboarding.unseal(owner, "bot_token", data["bot_token"]),
        bot_id=int(data["bot_id"]),
        kie_api_key=onboarding.unseal(owner, "kie_api_key", data["kie_api_key"]),
        language="en" if data["language"] == "en" else "ru",
        markup=Decimal(data["markup"]),
    )
    try:
        config = await onboarding.shops.create(request)
    except Taken as taken:
        await _after_clash(query.message, state, onboarding, lang, taken, request)
        return
    await state.clear()
    log.info("shop created through the platform bot", tenant=config.slug, status=config.status.value)
    # The operators first: this update is handled once, so a failure below must not lose the request.
    await tell_operators_of(bot, onboarding, config, data["username"], query.from_user)
    name = html.escape(config.display_name)
    with suppress(TelegramAPIError):
        await query.message.edit_reply_markup(reply_markup=None)
        key = "live" if config.status.served else "sent_for_approval"
        await query.message.answer(text(lang, key, name=name, username=data["username"]))


async def _after_clash(
    message: Message, state: FSMContext, onboarding: Onboarding, lang: Language, taken: Taken, request: ShopRequest
) -> None:
    """Someone else took the slug or the bot since it was checked: back to that step, or start over."""
    if taken.what == "slug":
        await state.set_state(NewShop.slug)
        await message.answer(text(lang, "slug_taken", slug=request.slug))
        return
    await state.clear()
    if taken.what == "bot":
        await message.answer(text(lang, "token_in_use"))
    else:
        pending = await onboarding.shops.pending(request.owner_id)
        name = pending.display_name if pending else request.name
        await message.answer(text(lang, "pending_exists", name=html.escape(name)))
