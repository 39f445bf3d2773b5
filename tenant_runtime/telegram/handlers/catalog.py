"""Categories → paged model lists → model card."""

from __future__ import annotations

from aiogram import Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from tenant_runtime.telegram import screens
from tenant_runtime.telegram.callback_data import CategoryCb, ModelCb
from tenant_runtime.telegram.context import Ctx
from tenant_runtime.telegram.handlers.wizard import begin
from tenant_runtime.telegram.limit_texts import free_refusal

router = Router(name="catalog")


@router.callback_query(CategoryCb.filter())
async def category(query: CallbackQuery, callback_data: CategoryCb, ctx: Ctx, state: FSMContext) -> None:
    await query.answer()
    if not isinstance(query.message, Message):
        return
    await state.clear()
    if not ctx.models(callback_data.category):
        await screens.show(query.message, await screens.main_menu(ctx), edit=True)
        return
    await screens.show(query.message, screens.category(ctx, callback_data.category, callback_data.page), edit=True)


@router.callback_query(ModelCb.filter())
async def model(query: CallbackQuery, callback_data: ModelCb, ctx: Ctx, state: FSMContext) -> None:
    if not isinstance(query.message, Message):
        await query.answer()
        return
    spec = ctx.services.registry.get(callback_data.model)
    # A follow-up (upscale, 1080p) is ordered from the result it acts on, never from the catalog.
    if spec is None or not ctx.visible(spec) or spec.follow_up is not None:
        await query.answer(ctx.t("card.unavailable"), show_alert=True)
        await screens.show(query.message, await screens.main_menu(ctx), edit=True)
        return
    await query.answer()
    if callback_data.choose:
        allowance = await screens.free_left(ctx) if spec.free else None
        if allowance is not None and allowance.exhausted:
            # Not worth filling in the wizard: Generate would be refused (and is, authoritatively).
            await query.message.answer(free_refusal(ctx.lang, allowance))
            return
        await begin(query.message, ctx, state, spec, params={}, edit=True)
    else:
        await screens.show(query.message, await screens.model_card(ctx, spec), edit=True)
