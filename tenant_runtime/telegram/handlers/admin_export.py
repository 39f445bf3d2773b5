"""/admin → Export: the shop's users, payments or generations as a CSV document (tenant_runtime.exports).

The file is written to a temporary file chunk by chunk (never whole in memory) and uploaded from disk;
`,` or `;` between cells, switched on the export screen (`;` first for Russian, as Excel there expects).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from datetime import UTC, datetime

from aiogram import Router
from aiogram.types import CallbackQuery, FSInputFile, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from shared.logs import get_logger
from tenant_runtime.exports import ExportKind, export_csv
from tenant_runtime.telegram import screens
from tenant_runtime.telegram.callback_data import AdminCb, ExportCb
from tenant_runtime.telegram.context import Ctx
from tenant_runtime.telegram.handlers.admin import is_admin

__all__ = ["router"]

log = get_logger(__name__)
router = Router(name="admin_export")
router.callback_query.filter(is_admin)

EVERYTHING = datetime(2000, 1, 1, tzinfo=UTC)
UPLOAD_TIMEOUT_SECONDS = 300


def _keyboard(ctx: Ctx, separator: str) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for kind in ExportKind:
        kb.button(text=ctx.t(f"export.{kind.value}"), callback_data=ExportCb(kind=kind.value, sep=separator))
    other = ";" if separator == "," else ","
    kb.button(text=ctx.t("export.separator", sep=separator, other=other), callback_data=ExportCb(sep=other))
    kb.button(text=ctx.t("btn.back"), callback_data=AdminCb(action="home"))
    kb.adjust(1)
    return kb.as_markup()


def _separator(value: str, ctx: Ctx) -> str:
    if value in (",", ";"):
        return value
    return ";" if ctx.lang == "ru" else ","


@router.callback_query(ExportCb.filter())
async def export(query: CallbackQuery, callback_data: ExportCb, ctx: Ctx) -> None:
    message = query.message
    if not isinstance(message, Message):
        await query.answer()
        return
    separator = _separator(callback_data.sep, ctx)
    if callback_data.kind not in set(ExportKind):
        await query.answer()
        await screens.show(message, (ctx.t("export.title"), _keyboard(ctx, separator)), edit=True)
        return
    kind = ExportKind(callback_data.kind)
    await query.answer(ctx.t("export.preparing"))
    path = await _write(ctx, kind, separator)
    try:
        name = f"{ctx.tenant.slug}-{kind.value}-{datetime.now(UTC):%Y%m%d}.csv"
        await message.answer_document(
            FSInputFile(path, filename=name),
            caption=ctx.t(f"export.{kind.value}"),
            request_timeout=UPLOAD_TIMEOUT_SECONDS,
        )
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    log.info("export sent", tenant=ctx.tenant.slug, kind=kind.value, admin=ctx.user.user_id)


async def _write(ctx: Ctx, kind: ExportKind, separator: str) -> str:
    """The CSV in a temporary file, written off the event loop a chunk at a time; removed if anything fails
    (the cursor's connection goes back to the pool at once, not when the generator is collected)."""
    handle, path = await asyncio.to_thread(tempfile.mkstemp, prefix="export-", suffix=".csv")
    try:
        with os.fdopen(handle, "wb") as out:
            rows = export_csv(ctx.services.pool, ctx.tenant.id, kind, EVERYTHING, separator=separator)
            async with contextlib.aclosing(rows):
                async for chunk in rows:
                    await asyncio.to_thread(out.write, chunk)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return path
