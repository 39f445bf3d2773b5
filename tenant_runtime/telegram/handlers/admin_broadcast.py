"""/admin → Broadcast: the admin sends the message (text with formatting, or a photo or video with a
caption), optionally one URL button, sees a preview and the size of each audience, and confirms.

Nothing is written before the confirmation, and a bad message (empty, over Telegram's limits, a button
whose URL is not a URL) is answered with what is wrong while the step waits for a better one. Confirming
writes the broadcast and its recipients in one transaction and posts the progress message that the
lock holder's sender (`broadcasts.sender`) keeps current; its buttons pause, resume or cancel.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from aiogram import Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from shared.logs import get_logger
from tenant_runtime.broadcasts import store
from tenant_runtime.broadcasts.content import ContentError, ContentProblem, content_of, parse_button
from tenant_runtime.broadcasts.model import Audience, BroadcastStatus, Content, ContentKind
from tenant_runtime.broadcasts.sending import send_content
from tenant_runtime.telegram.broadcast_texts import eta, final_text, progress_keyboard, progress_text
from tenant_runtime.telegram.callback_data import CastCb
from tenant_runtime.telegram.context import Ctx
from tenant_runtime.telegram.filters import NOT_COMMAND, PLAIN_TEXT
from tenant_runtime.telegram.handlers.admin import is_admin
from tenant_runtime.telegram.traffic import BULK_RATE

__all__ = ["router"]

log = get_logger(__name__)
router = Router(name="admin_broadcast")
router.message.filter(is_admin)
router.callback_query.filter(is_admin)

_PROBLEMS: dict[ContentProblem, str] = {
    ContentProblem.EMPTY: "cast.empty",
    ContentProblem.UNSUPPORTED: "cast.unsupported",
    ContentProblem.TOO_LONG: "cast.too_long",
    ContentProblem.BUTTON_FORMAT: "cast.button_format",
    ContentProblem.BUTTON_TEXT: "cast.button_text",
    ContentProblem.BUTTON_URL: "cast.button_url",
}
_TO: dict[str, BroadcastStatus] = {
    "pause": BroadcastStatus.PAUSED,
    "resume": BroadcastStatus.RUNNING,
    "stop": BroadcastStatus.CANCELLED,
}


class Cast(StatesGroup):
    content = State()  # waiting for the message to broadcast
    button = State()  # waiting for "text | URL" or "no button"
    audience = State()  # the preview is shown; waiting for the audience
    confirm = State()  # waiting for Send


def _problem(ctx: Ctx, exc: ContentError) -> str:
    return ctx.t(_PROBLEMS[exc.problem], length=exc.length, limit=exc.limit)


def _content(data: dict[str, Any]) -> Content:
    raw = dict(data["cast"])
    return Content(ContentKind(raw.pop("kind")), **raw)


def _keyboard(ctx: Ctx, choices: list[tuple[str, CastCb]]) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for label, data in choices:
        kb.button(text=label, callback_data=data)
    kb.adjust(1)
    return kb.as_markup()


@router.message(StateFilter(Cast.content), NOT_COMMAND)
async def content_message(message: Message, ctx: Ctx, state: FSMContext) -> None:
    try:
        content = content_of(message)
    except ContentError as exc:
        await message.answer(_problem(ctx, exc))
        return  # still waiting for a message that can be sent
    await state.update_data(cast=dataclasses.asdict(content))
    await state.set_state(Cast.button)
    drop = ctx.t("btn.cancel")
    await message.answer(
        ctx.t("cast.ask_button"),
        reply_markup=_keyboard(
            ctx, [(ctx.t("cast.btn.no_button"), CastCb(action="nobutton")), (drop, CastCb(action="drop"))]
        ),
    )


@router.message(StateFilter(Cast.button), PLAIN_TEXT)
async def button_message(message: Message, ctx: Ctx, state: FSMContext) -> None:
    try:
        label, url = parse_button(message.text or "")
    except ContentError as exc:
        await message.answer(_problem(ctx, exc))
        return
    data = await state.get_data()
    await state.update_data(cast={**data["cast"], "button_text": label, "button_url": url})
    await _preview(message, ctx, state)


async def _preview(message: Message, ctx: Ctx, state: FSMContext) -> None:
    """The message exactly as recipients will get it, then the audiences with their sizes."""
    data = await state.get_data()
    await send_content(message.bot, message.chat.id, _content(data))  # type: ignore[arg-type]
    sizes = await store.audience_sizes(ctx.services.pool, ctx.tenant.id)
    choices = [
        (ctx.t(f"cast.audience.{audience}", count=sizes[audience]), CastCb(action="audience", audience=audience))
        for audience in Audience
    ]
    await state.set_state(Cast.audience)
    await message.answer(
        ctx.t("cast.preview"), reply_markup=_keyboard(ctx, [*choices, (ctx.t("btn.cancel"), CastCb(action="drop"))])
    )


@router.callback_query(CastCb.filter())
async def cast_button(query: CallbackQuery, callback_data: CastCb, ctx: Ctx, state: FSMContext) -> None:
    message = query.message
    if not isinstance(message, Message):
        await query.answer()
        return
    action = callback_data.action
    if action in _TO:
        await _control(query, message, ctx, callback_data.id, _TO[action])
        return
    await query.answer()
    current = await state.get_state()
    if action == "new":
        await _start(message, ctx, state)
    elif action == "drop":
        await state.clear()
        await message.answer(ctx.t("cast.dropped"))
    elif action == "nobutton" and current == Cast.button.state:
        await _preview(message, ctx, state)
    elif action == "audience" and current == Cast.audience.state and callback_data.audience in set(Audience):
        audience = Audience(callback_data.audience)
        count = (await store.audience_sizes(ctx.services.pool, ctx.tenant.id))[audience]
        if count == 0:
            await message.answer(ctx.t("cast.nobody"))
            return
        await state.update_data(audience=audience)
        await state.set_state(Cast.confirm)
        await message.answer(
            ctx.t("cast.confirm", count=count, eta=eta(ctx.lang, count / BULK_RATE)),
            reply_markup=_keyboard(
                ctx,
                [(ctx.t("cast.btn.send"), CastCb(action="send")), (ctx.t("btn.cancel"), CastCb(action="drop"))],
            ),
        )
    elif action == "send" and current == Cast.confirm.state:
        await _send(message, ctx, state)


async def _start(message: Message, ctx: Ctx, state: FSMContext) -> None:
    open_now = await store.open_for(ctx.services.pool, [ctx.tenant.id])
    if open_now:
        await message.answer(ctx.t("cast.busy", id=open_now[0].id))
        return
    await state.set_state(Cast.content)
    await state.set_data({"draft": secrets.token_urlsafe(9)})
    await message.answer(ctx.t("cast.ask_content"))


async def _send(message: Message, ctx: Ctx, state: FSMContext) -> None:
    data = await state.get_data()
    created = await store.create(
        ctx.services.pool,
        ctx.tenant.id,
        draft=data["draft"],
        admin_id=ctx.user.user_id,
        admin_chat_id=message.chat.id,
        language=ctx.lang,
        audience=Audience(data["audience"]),
        content=_content(data),
    )
    await state.clear()
    broadcast = created.broadcast
    if broadcast is None:
        await message.answer(ctx.t("cast.nobody"))
        return
    if created.busy:
        await message.answer(ctx.t("cast.busy", id=broadcast.id))
        return
    if not created.new:
        return  # a second tap on Send: the first one's progress message is there
    log.info("broadcast started", tenant=ctx.tenant.slug, broadcast=broadcast.id, total=broadcast.total)
    shown = await message.answer(
        progress_text(broadcast, await store.progress(ctx.services.pool, broadcast.id)),
        reply_markup=progress_keyboard(broadcast),
    )
    await store.set_progress_message(ctx.services.pool, broadcast.id, shown.message_id)


async def _control(query: CallbackQuery, message: Message, ctx: Ctx, broadcast_id: int, to: BroadcastStatus) -> None:
    """Pause, resume or cancel from the progress message's buttons; the message shows the new state."""
    pool = ctx.services.pool
    changed = await store.set_status(pool, ctx.tenant.id, broadcast_id, to, ctx.user.user_id)
    if changed is None:
        current = await store.get(pool, ctx.tenant.id, broadcast_id)
        state = ctx.t(f"cast.state.{current.status}") if current else "—"
        await query.answer(ctx.t("cast.not_changed", id=broadcast_id, state=state))
        return
    await query.answer()
    log.info("broadcast changed by admin", tenant=ctx.tenant.slug, broadcast=broadcast_id, status=to)
    progress = await store.progress(pool, broadcast_id)
    body = final_text(changed, progress) if to is BroadcastStatus.CANCELLED else progress_text(changed, progress)
    await message.edit_text(body, reply_markup=progress_keyboard(changed))
