"""The parameter wizard: one field per step, enums as buttons, files as messages, then a confirm screen.

Asked are the required fields and the optional choices and bounded numbers (each with "skip / use
default"); optional free text (negative prompts), open numbers (seeds) and extra files keep defaults.
A field with a condition is asked only when the choices before it meet it (Suno's lyrics in custom
mode); a choice KIE does not offer with the ones already made is refused on the spot; fields the bot
fills itself (a follow-up's parent task) are never asked nor shown. State lives in the Postgres FSM:
{"model", "params", "step", "draft", "price"}; "price" is what the confirm screen quoted, and the one
amount Generate may charge.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiogram import F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from shared.registry import FILE_TYPES, FieldSpec, ModelSpec
from tenant_runtime.generation.media_links import media_url
from tenant_runtime.telegram import keyboards, screens
from tenant_runtime.telegram.callback_data import ValueCb, WizardCb
from tenant_runtime.telegram.context import Ctx
from tenant_runtime.telegram.filters import FILE, PLAIN_TEXT
from tenant_runtime.telegram.texts import Raw
from tenant_runtime.telegram.wizard_fields import field_label, labelled, not_with, number_text, prompt, shown, steps

router = Router(name="wizard")


class Wizard(StatesGroup):
    input = State()
    confirm = State()


async def begin(
    message: Message, ctx: Ctx, state: FSMContext, spec: ModelSpec, *, params: dict[str, Any], edit: bool
) -> None:
    await state.set_state(Wizard.input)
    await state.set_data({"model": spec.id, "params": params, "step": 0, "draft": secrets.token_urlsafe(9)})
    await _show_step(message, ctx, state, spec, 0, params, edit=edit)


async def confirm_again(
    message: Message, ctx: Ctx, state: FSMContext, spec: ModelSpec, params: dict[str, Any], *, notice: str | None
) -> None:
    """A new confirm screen (a new draft: the old screen's Generate button goes stale) with `notice` on top,
    e.g. when the price changed since the user last saw it."""
    await state.set_state(Wizard.confirm)
    draft = secrets.token_urlsafe(9)
    await state.set_data({"model": spec.id, "params": params, "step": len(steps(spec, params)), "draft": draft})
    await _show_confirm(message, ctx, state, spec, params, edit=False, notice=notice)


async def show_current(message: Message, ctx: Ctx, state: FSMContext) -> None:
    """The screen the conversation is at, as a new message (after a stale button's toast): the wizard's
    step or confirm screen, else the main menu."""
    data = await state.get_data()
    spec = ctx.services.registry.get(data.get("model", ""))
    current = await state.get_state()
    if spec is not None and current == Wizard.confirm.state:
        await _show_confirm(message, ctx, state, spec, data["params"], edit=False)
        return
    if (
        spec is not None
        and current == Wizard.input.state
        and 0 <= data.get("step", -1) < len(steps(spec, data["params"]))
    ):
        await _show_step(message, ctx, state, spec, data["step"], data["params"], edit=False)
        return
    await state.clear()
    await screens.show(message, await screens.main_menu(ctx), edit=False)


async def _show_step(
    message: Message, ctx: Ctx, state: FSMContext, spec: ModelSpec, step: int, params: dict[str, Any], *, edit: bool
) -> None:
    fields = steps(spec, params)
    if step >= len(fields):
        await _show_confirm(message, ctx, state, spec, params, edit=edit)
        return
    field = fields[step]
    received = len(params.get(field.name) or []) if field.type == "image_urls" else 0
    lines = [
        ctx.t("wizard.step", step=step + 1, steps=len(fields), label=field_label(ctx, field)),
        prompt(ctx, field, received),
    ]
    if not field.required:
        lines.append(ctx.t("wizard.optional"))
    await state.set_state(Wizard.input)
    await state.update_data(step=step)
    await screens.show(
        message, (Raw("\n".join(lines)), keyboards.field_step(ctx, field, step, files_received=received)), edit=edit
    )


async def _show_confirm(
    message: Message,
    ctx: Ctx,
    state: FSMContext,
    spec: ModelSpec,
    params: dict[str, Any],
    *,
    edit: bool,
    notice: str | None = None,
) -> None:
    await state.set_state(Wizard.confirm)
    data = await state.get_data()
    price = ctx.price(spec, params)
    if price is None:
        await state.clear()
        await screens.show(message, (ctx.t("card.unavailable"), keyboards.to_menu(ctx)), edit=edit)
        return
    await state.update_data(price=price)  # what Generate charges: exactly what this screen shows
    balance = await ctx.services.ledger.balance(ctx.tenant.id, ctx.user.user_id)
    lines = [
        f"• {labelled(field_label(ctx, field), shown(ctx, field, params[field.name]))}"
        for field in spec.inputs
        if field.name in params and not field.internal and spec.asked(field, params)
    ]
    enough = balance.available >= price
    body = ctx.t(
        "confirm",
        title=screens.title(ctx, spec),
        params="\n".join(lines),
        price=ctx.t("catalog.free") if price == 0 else ctx.money(price),
        after=ctx.money(balance.available - price if enough else balance.available),
    )
    if notice:
        body = f"{notice}\n\n{body}"
    if not enough:
        body += "\n\n" + ctx.t(
            "confirm.short",
            missing=ctx.money(price - balance.available),
            price=ctx.money(price),
            balance=ctx.money(balance.available),
        )
    await screens.show(message, (Raw(body), keyboards.confirm(ctx, data["draft"], enough=enough)), edit=edit)


async def _advance(message: Message, ctx: Ctx, state: FSMContext, *, edit: bool) -> None:
    data = await state.get_data()
    spec = ctx.services.registry.get(data["model"])
    assert spec is not None
    await _show_step(message, ctx, state, spec, data["step"] + 1, data["params"], edit=edit)


async def _current(ctx: Ctx, state: FSMContext) -> tuple[ModelSpec, FieldSpec, dict[str, Any]] | None:
    data = await state.get_data()
    spec = ctx.services.registry.get(data.get("model", ""))
    if spec is None:
        return None
    fields = steps(spec, data["params"])
    step = data.get("step", 0)
    if not 0 <= step < len(fields):
        return None
    return spec, fields[step], data


async def _current_or_menu(
    message: Message, ctx: Ctx, state: FSMContext
) -> tuple[ModelSpec, FieldSpec, dict[str, Any]] | None:
    """The wizard's position, or None after resetting a conversation whose state no longer makes sense
    (a model removed from the registry, a step out of range) and showing the main menu instead."""
    current = await _current(ctx, state)
    if current is None:
        await state.clear()
        await screens.show(message, await screens.main_menu(ctx), edit=False)
    return current


async def _set(state: FSMContext, data: dict[str, Any], name: str, value: object) -> None:
    params = dict(data["params"])
    if value is None:
        params.pop(name, None)
    else:
        params[name] = value
    await state.update_data(params=params)


@router.message(StateFilter(Wizard.input), PLAIN_TEXT)
async def text_input(message: Message, ctx: Ctx, state: FSMContext) -> None:
    current = await _current_or_menu(message, ctx, state)
    if current is None:
        return
    _spec, field, data = current
    value = (message.text or "").strip()
    if field.type == "string":
        limit = field.max_length or 4000
        if len(value) > limit:
            await message.answer(ctx.t("wizard.too_long", length=len(value), max=limit))
            return
        if field.min_length and len(value) < field.min_length:
            await message.answer(ctx.t("wizard.too_short", min=field.min_length))
            return
        await _set(state, data, field.name, value)
    elif field.type in ("int", "float"):
        try:
            number: int | float = int(value) if field.type == "int" else float(value.replace(",", "."))
        except ValueError:
            await message.answer(ctx.t("wizard.not_number", min=number_text(field.min), max=number_text(field.max)))
            return
        if (field.min is not None and number < field.min) or (field.max is not None and number > field.max):
            await message.answer(ctx.t("wizard.out_of_range", min=number_text(field.min), max=number_text(field.max)))
            return
        await _set(state, data, field.name, number)
    elif field.type in ("enum", "bool"):
        await message.answer(ctx.t("wizard.use_buttons"), reply_markup=keyboards.field_step(ctx, field, data["step"]))
        return
    else:
        key = {"audio_url": "wizard.need_audio", "video_url": "wizard.need_video"}.get(field.type, "wizard.need_photo")
        await message.answer(ctx.t(key))
        return
    await _advance(message, ctx, state, edit=False)


def _file_id(message: Message, field: FieldSpec) -> str | None:
    if field.type in ("image_url", "image_urls"):
        if message.photo:
            return message.photo[-1].file_id
        if message.document and (message.document.mime_type or "").startswith("image/"):
            return message.document.file_id
    elif field.type == "audio_url":
        for item in (message.audio, message.voice):
            if item is not None:
                return item.file_id
        if message.document and (message.document.mime_type or "").startswith("audio/"):
            return message.document.file_id
    elif field.type == "video_url":
        if message.video:
            return message.video.file_id
        if message.document and (message.document.mime_type or "").startswith("video/"):
            return message.document.file_id
    return None


@router.message(StateFilter(Wizard.input), FILE)
async def file_input(message: Message, ctx: Ctx, state: FSMContext) -> None:
    current = await _current_or_menu(message, ctx, state)
    if current is None:
        return
    spec, field, data = current
    if field.type not in FILE_TYPES:
        await message.answer(ctx.t("wizard.use_buttons") if field.type in ("enum", "bool") else prompt(ctx, field, 0))
        return
    file_id = _file_id(message, field)
    if file_id is None:
        key = {"audio_url": "wizard.need_audio", "video_url": "wizard.need_video"}.get(field.type, "wizard.need_photo")
        await message.answer(ctx.t(key))
        return
    tenant = ctx.tenant
    url = media_url(ctx.services.settings.public_base_url, tenant.slug, tenant.callback_secret, tenant.id, file_id)
    if url is None:
        await message.answer(ctx.t("wizard.no_media_host"))
        return
    if field.type == "image_urls":
        urls = [*list(data["params"].get(field.name) or []), url]
        await _set(state, data, field.name, urls)
        if len(urls) < (field.max_items or 1):
            await _show_step(message, ctx, state, spec, data["step"], {**data["params"], field.name: urls}, edit=False)
            return
    else:
        await _set(state, data, field.name, url)
    await _advance(message, ctx, state, edit=False)


@router.message(StateFilter(Wizard.input))
async def other_input(message: Message, ctx: Ctx, state: FSMContext) -> None:
    current = await _current_or_menu(message, ctx, state)
    if current is None:
        return
    await message.answer(prompt(ctx, current[1], 0))


@router.callback_query(ValueCb.filter())
async def choose(query: CallbackQuery, callback_data: ValueCb, ctx: Ctx, state: FSMContext) -> None:
    if not isinstance(query.message, Message):
        await query.answer(ctx.t("stale"))
        return
    current = await _current(ctx, state)
    if current is None or current[2]["step"] != callback_data.step or await state.get_state() != Wizard.input.state:
        # An option of another step (or of a finished wizard): the toast, then the screen we are at.
        await query.answer(ctx.t("stale"))
        await show_current(query.message, ctx, state)
        return
    spec, field, data = current
    if callback_data.index == -1:
        if field.required:
            await query.answer(ctx.t("wizard.use_buttons"))
            return
        await _set(state, data, field.name, None)
    else:
        choices = field.choices()
        if not 0 <= callback_data.index < len(choices):
            await query.answer(ctx.t("stale"))
            await show_current(query.message, ctx, state)
            return
        conflict = spec.conflict({**data["params"], field.name: choices[callback_data.index]})
        if conflict is not None:
            # KIE does not offer this with a choice already made: refused here, before any money is held.
            await query.answer(not_with(ctx, spec, field, conflict), show_alert=True)
            return
        await _set(state, data, field.name, choices[callback_data.index])
    await query.answer()
    await _advance(query.message, ctx, state, edit=True)


@router.callback_query(StateFilter(Wizard.input), WizardCb.filter(F.action == "more"))
async def files_done(query: CallbackQuery, ctx: Ctx, state: FSMContext) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await _advance(query.message, ctx, state, edit=True)


@router.callback_query(WizardCb.filter(F.action.in_({"back", "edit", "cancel"})))
async def navigate(query: CallbackQuery, callback_data: WizardCb, ctx: Ctx, state: FSMContext) -> None:
    await query.answer()
    if not isinstance(query.message, Message):
        return
    data = await state.get_data()
    spec = ctx.services.registry.get(data.get("model", ""))
    if callback_data.action == "cancel" or spec is None:
        await state.clear()
        if callback_data.action == "cancel":
            await query.message.edit_text(ctx.t("wizard.cancelled"))
        await screens.show(query.message, await screens.main_menu(ctx), edit=False)
        return
    if callback_data.action == "edit":
        await _show_step(query.message, ctx, state, spec, 0, data["params"], edit=True)
        return
    step = data.get("step", 0) if await state.get_state() == Wizard.input.state else len(steps(spec, data["params"]))
    if step <= 0:
        await state.clear()
        await screens.show(query.message, await screens.model_card(ctx, spec), edit=True)
        return
    await _show_step(query.message, ctx, state, spec, step - 1, data["params"], edit=True)
