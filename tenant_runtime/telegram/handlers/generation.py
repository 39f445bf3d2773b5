"""Starting generations: "Generate" on the confirm screen, "Repeat", "Try again", "Change parameters".

A tap creates the job and its hold in one transaction keyed by the button (the confirm screen's
draft, or the job being repeated), so double taps find the same job instead of a second one. The
amount charged is the one the user was shown: the confirm screen's quote (kept in the draft), or the
previous job's price for "Repeat"; if today's price differs, the user gets a new confirm screen.

Once a job exists, no error may end in the generic "nothing was charged": whatever fails after that
(a Telegram flood wait on a screen edit, say), the user is told the job's money as the ledger has it.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from aiogram import Router
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramServerError, TelegramUnauthorizedError
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from shared import metrics
from shared.db import DB_UNAVAILABLE
from shared.logs import get_logger
from shared.registry import ModelSpec
from tenant_runtime.billing.ledger import InsufficientFunds
from tenant_runtime.generation.jobs import Job, JobStatus
from tenant_runtime.limits.job_limits import FreeQuotaUsed, JobLimitReached
from tenant_runtime.limits.shop_limits import LimitKind
from tenant_runtime.telegram import keyboards, screens
from tenant_runtime.telegram.callback_data import GenerateCb, JobCb
from tenant_runtime.telegram.context import Ctx
from tenant_runtime.telegram.handlers.wizard import Wizard, begin, confirm_again, show_current
from tenant_runtime.telegram.job_texts import first_progress
from tenant_runtime.telegram.limit_texts import refusal
from tenant_runtime.telegram.money_texts import money_line
from tenant_runtime.telegram.progress import Followed, follow
from tenant_runtime.telegram.texts import Raw

log = get_logger(__name__)
router = Router(name="generation")


async def _create(
    message: Message, ctx: Ctx, spec: ModelSpec, params: dict[str, Any], key: str, price: int
) -> tuple[Job, bool] | None:
    """The job for `key` and whether it is new; None when the balance is short or a limit refused it (the
    user was told; nothing was written)."""
    try:
        return await ctx.services.jobs.create(
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
        return None
    except JobLimitReached as exc:
        kind = LimitKind.FREE_DAILY if isinstance(exc, FreeQuotaUsed) else LimitKind.OPEN_JOBS
        metrics.LIMIT_HITS.labels(ctx.tenant.slug, kind).inc()
        await message.answer(refusal(ctx.lang, exc))
        return None


async def _launch(message: Message, ctx: Ctx, spec: ModelSpec, job: Job, created: bool) -> None:
    """Show the progress message and submit the job (a job found again is submitted if it never was)."""
    jobs = ctx.services.jobs
    if not created:
        await message.answer(ctx.t("confirm.started_already"))
        if job.status == JobStatus.CREATED and job.kie_state is None:
            jobs.spawn(jobs.submit(ctx.runtime, job))  # confirmed, never submitted (crash)
        return
    try:
        progress = await message.answer(first_progress(ctx.lang, screens.title(ctx, spec), spec.typical_seconds))
        await jobs.set_progress_message(job.id, progress.message_id)
        follow(
            Followed(
                ctx.runtime.bot,
                jobs,
                spec,
                ctx.tenant.id,
                job.id,
                message.chat.id,
                progress.message_id,
                ctx.tenant.profile.support_url,
            )
        )
    finally:
        # Whatever became of the progress message, a job that exists is submitted.
        jobs.spawn(jobs.submit(ctx.runtime, job))


@asynccontextmanager
async def money_told_on_error(message: Message, ctx: Ctx, job: Job) -> AsyncIterator[None]:
    """After the job exists, an error is answered with the job's money as the ledger has it (held,
    charged, returned), not the generic apology. Database outages and Telegram out of reach still go
    to the runtime, which hands the update back and retries it (a retry finds the same job)."""
    try:
        yield
    except DB_UNAVAILABLE:
        raise
    except (TelegramNetworkError, TelegramServerError, TelegramUnauthorizedError):
        raise
    except Exception:
        log.exception("error after the job was created", job_id=job.id, correlation_id=ctx.correlation_id)
        jobs = ctx.services.jobs
        current = await jobs.get(ctx.tenant.id, job.id) or job
        spec = ctx.services.registry.get(job.model)
        body = ctx.t(
            "job.error_after_start",
            title=screens.title(ctx, spec) if spec else job.model,
            money=money_line(ctx.lang, await jobs.money(current)),
            cid=ctx.correlation_id,
        )
        with suppress(TelegramAPIError, TimeoutError):
            await message.answer(body)


@router.callback_query(GenerateCb.filter())
async def generate(query: CallbackQuery, callback_data: GenerateCb, ctx: Ctx, state: FSMContext) -> None:
    message = query.message
    data = await state.get_data()
    key = f"draft:{callback_data.draft}"
    if await state.get_state() != Wizard.confirm.state or data.get("draft") != callback_data.draft:
        # A second tap after the job started, or a confirm screen from long ago.
        started = await ctx.services.jobs.started(ctx.tenant.id, key)
        await query.answer(ctx.t("confirm.started_already" if started else "stale"))
        if not started and isinstance(message, Message):
            await show_current(message, ctx, state)
        return
    spec = ctx.services.registry.get(data["model"])
    params = dict(data["params"])
    price = ctx.price(spec, params) if spec is not None else None
    if spec is None or price is None or not ctx.visible(spec) or not isinstance(message, Message):
        await query.answer(ctx.t("card.unavailable"), show_alert=True)
        await state.clear()
        return
    await query.answer()
    quoted = data.get("price")
    if price != quoted:
        # The markup (or the registry) changed since the screen was shown: never charge an unseen price.
        notice = None
        if isinstance(quoted, int):
            notice = ctx.t("confirm.price_changed", old=ctx.money(quoted), new=ctx.money(price))
        await confirm_again(message, ctx, state, spec, params, notice=notice)
        return
    found = await _create(message, ctx, spec, params, key, price)
    if found is None:
        return
    job, created = found
    async with money_told_on_error(message, ctx, job):
        await state.clear()
        await _launch(message, ctx, spec, job, created)
        await message.edit_reply_markup(reply_markup=None)


async def _send_links(message: Message, ctx: Ctx, job: Job, spec: ModelSpec | None) -> None:
    """The result's files again, as links (they are KIE's, kept for a limited time)."""
    if not screens.results_available(job):
        await message.answer(ctx.t("history.links_gone"))
        return
    links = "\n".join(f'<a href="{html.escape(url)}">{i}</a>' for i, url in enumerate(job.result_urls, start=1))
    await message.answer(
        ctx.t("history.links", title=screens.title(ctx, spec) if spec else job.model, links=Raw(links))
    )


@router.callback_query(JobCb.filter())
async def job_action(query: CallbackQuery, callback_data: JobCb, ctx: Ctx, state: FSMContext) -> None:
    message = query.message
    job = await ctx.services.jobs.get(ctx.tenant.id, callback_data.job)
    spec = ctx.services.registry.get(job.model) if job else None
    if job is None or job.user_id != ctx.user.user_id or not isinstance(message, Message):
        await query.answer(ctx.t("stale"))
        return
    if callback_data.action == "download":
        await query.answer()
        await _send_links(message, ctx, job, spec)
        return
    params = dict(job.params)
    price = ctx.price(spec, params) if spec is not None else None
    if spec is None or price is None or not ctx.visible(spec):
        await query.answer(ctx.t("card.unavailable"), show_alert=True)
        return
    await query.answer()
    if callback_data.action == "change":
        await begin(message, ctx, state, spec, params=params, edit=False)
        return
    if price != job.price:
        # "Repeat" promises the price the user paid last time; a different one is confirmed first.
        notice = ctx.t("confirm.price_changed", old=ctx.money(job.price), new=ctx.money(price))
        await confirm_again(message, ctx, state, spec, params, notice=notice)
        return
    await state.clear()
    # Keyed by the message pressed: a double tap repeats once, a repeat from another card is a new order.
    found = await _create(message, ctx, spec, params, f"{callback_data.action}:{job.id}:{message.message_id}", price)
    if found is None:
        return
    new_job, created = found
    async with money_told_on_error(message, ctx, new_job):
        await _launch(message, ctx, spec, new_job, created)
