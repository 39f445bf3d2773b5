"""A follow-up button under a result (Upscale 2, 1080p version): its own confirm screen and price.

The tap opens the ordinary confirm screen for the follow-up model with the parent's task filled in;
"Generate" there creates a new job with its own hold (the generation handler), so the parent job's
money is never touched and a double tap finds the same job.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from tenant_runtime.generation.follow_ups import follow_up_params
from tenant_runtime.telegram.callback_data import FollowCb
from tenant_runtime.telegram.context import Ctx
from tenant_runtime.telegram.handlers.wizard import confirm_again

__all__ = ["router"]

router = Router(name="follow_ups")


@router.callback_query(FollowCb.filter())
async def follow_up(query: CallbackQuery, callback_data: FollowCb, ctx: Ctx, state: FSMContext) -> None:
    message = query.message
    job = await ctx.services.jobs.get(ctx.tenant.id, callback_data.job)
    if job is None or job.user_id != ctx.user.user_id or not isinstance(message, Message):
        await query.answer(ctx.t("stale"))
        return
    spec = ctx.services.registry.get(callback_data.model)
    params = follow_up_params(spec, job, callback_data.index) if spec is not None else None
    if spec is None or params is None or not ctx.visible(spec) or ctx.price(spec, params) is None:
        await query.answer(ctx.t("card.unavailable"), show_alert=True)
        return
    await query.answer()
    await confirm_again(message, ctx, state, spec, params, notice=None)
