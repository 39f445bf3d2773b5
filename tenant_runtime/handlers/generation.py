"""Starting generations: "Generate" on the confirm screen, "Repeat", "Try again", "Change parameters".

A tap creates the job and its hold in one transaction keyed by the button (the confirm screen's
draft, or the job being repeated), so double taps find the same job instead of a second one.
"""

from __future__ import annotations

from typing import Any

from aiogram import Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from shared.registry import ModelSpec
from tenant_runtime import keyboards, screens
from tenant_runtime.callbacks import GenerateCb, JobCb
from tenant_runtime.context import Ctx
from tenant_runtime.handlers.wizard import Wizard, begin
from tenant_runtime.ledger import InsufficientFunds

router = Router(name="generation")


async def start_job(message: Message, ctx: Ctx, spec: ModelSpec, params: dict[str, Any], key: str) -> bool:
    """Create (or find) the job for `key` and submit it. False when the balance is short."""
    price = ctx.price(spec, params)
    if price is None:
        await message.answer(ctx.t("card.unavailable"), reply_markup=keyboards.to_menu(ctx))
        return True
    services = ctx.services
    try:
        job, created = await services.jobs.create(
            ctx.tenant,
            user_id=ctx.user.user_id,
            chat_id=message.chat.id,
            spec=spec,
            params=params,
            price=price,
            idempotency_key=key,
            language=ctx.lang,
            correlation_id=ctx.correlation_id,
        )
    except InsufficientFunds as exc:
        await message.answer(
            ctx.t(
                "confirm.short",
                missing=ctx.money(exc.required - exc.available),
                price=ctx.money(price),
                balance=ctx.money(exc.available),
            ),
            reply_markup=keyboards.confirm(ctx, "-", enough=False),
        )
        return False
    if not created:
        await message.answer(ctx.t("confirm.started_already"))
        if job.status == "created" and job.kie_state is None:
            services.jobs.spawn(services.jobs.submit(ctx.runtime, job))  # confirmed, never submitted (crash)
        return True
    progress = await message.answer(ctx.t("job.queued", title=screens.title(ctx, spec)))
    await services.jobs.set_progress_message(job.id, progress.message_id)
    services.jobs.spawn(services.jobs.submit(ctx.runtime, job))
    return True


@router.callback_query(GenerateCb.filter())
async def generate(query: CallbackQuery, callback_data: GenerateCb, ctx: Ctx, state: FSMContext) -> None:
    message = query.message
    data = await state.get_data()
    key = f"draft:{callback_data.draft}"
    if await state.get_state() != Wizard.confirm.state or data.get("draft") != callback_data.draft:
        # A second tap after the job started, or a confirm screen from long ago.
        started = await ctx.services.jobs.started(ctx.tenant.id, key)
        await query.answer(ctx.t("confirm.started_already" if started else "stale"))
        return
    spec = ctx.services.registry.get(data["model"])
    if spec is None or not ctx.visible(spec) or not isinstance(message, Message):
        await query.answer(ctx.t("card.unavailable"), show_alert=True)
        await state.clear()
        return
    await query.answer()
    if await start_job(message, ctx, spec, dict(data["params"]), key):
        await state.clear()
        await message.edit_reply_markup(reply_markup=None)


@router.callback_query(JobCb.filter())
async def job_action(query: CallbackQuery, callback_data: JobCb, ctx: Ctx, state: FSMContext) -> None:
    message = query.message
    job = await ctx.services.jobs.get(ctx.tenant.id, callback_data.job)
    spec = ctx.services.registry.get(job.model) if job else None
    if job is None or job.user_id != ctx.user.user_id or not isinstance(message, Message):
        await query.answer(ctx.t("stale"))
        return
    if spec is None or not ctx.visible(spec):
        await query.answer(ctx.t("card.unavailable"), show_alert=True)
        return
    await query.answer()
    if callback_data.action == "change":
        await begin(message, ctx, state, spec, params=dict(job.params), edit=False)
        return
    await state.clear()
    await start_job(message, ctx, spec, dict(job.params), f"{callback_data.action}:{job.id}")
