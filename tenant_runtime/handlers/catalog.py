"""Categories → paged model lists → model card."""

from __future__ import annotations

from aiogram import Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from tenant_runtime import screens
from tenant_runtime.callbacks import CategoryCb, ModelCb
from tenant_runtime.context import Ctx
from tenant_runtime.handlers.wizard import begin

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
    if spec is None or not ctx.visible(spec):
        await query.answer(ctx.t("card.unavailable"), show_alert=True)
        await screens.show(query.message, await screens.main_menu(ctx), edit=True)
        return
    await query.answer()
    if callback_data.choose:
        await begin(query.message, ctx, state, spec, params={}, edit=True)
    else:
        await screens.show(query.message, screens.model_card(ctx, spec), edit=True)
