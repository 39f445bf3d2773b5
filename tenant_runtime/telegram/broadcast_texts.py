"""How a broadcast's progress and final report read for its admin, and the progress message's buttons."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from tenant_runtime.broadcasts.model import Broadcast, BroadcastStatus, Progress
from tenant_runtime.config import Language
from tenant_runtime.telegram.callback_data import CastCb
from tenant_runtime.telegram.limit_texts import duration
from tenant_runtime.telegram.texts import text

__all__ = ["eta", "final_text", "progress_keyboard", "progress_text"]


def eta(lang: Language, seconds: float) -> str:
    return duration(lang, seconds)


def _unknown(lang: Language, progress: Progress) -> str:
    return text(lang, "cast.progress_unknown", count=progress.unknown) if progress.unknown else ""


def progress_text(broadcast: Broadcast, progress: Progress) -> str:
    lang = broadcast.language
    left_eta = progress.eta_s if broadcast.status is BroadcastStatus.RUNNING and progress.pending else None
    return text(
        lang,
        "cast.progress",
        id=broadcast.id,
        state=text(lang, f"cast.state.{broadcast.status}"),
        sent=progress.sent,
        failed=progress.failed,
        blocked=progress.blocked,
        unknown=_unknown(lang, progress),
        left=progress.pending,
        total=progress.total,
        eta=text(lang, "cast.progress_eta", eta=eta(lang, left_eta)) if left_eta is not None else "",
    )


def final_text(broadcast: Broadcast, progress: Progress) -> str:
    lang = broadcast.language
    if broadcast.status is BroadcastStatus.CANCELLED:
        return text(
            lang,
            "cast.report_cancelled",
            id=broadcast.id,
            sent=progress.sent,
            total=progress.total,
            left=progress.pending,
        )
    return text(
        lang,
        "cast.report",
        id=broadcast.id,
        duration=eta(lang, progress.elapsed_s),
        sent=progress.sent,
        total=progress.total,
        failed=progress.failed,
        blocked=progress.blocked,
        unknown=_unknown(lang, progress),
    )


def progress_keyboard(broadcast: Broadcast) -> InlineKeyboardMarkup | None:
    """Pause or Resume, and Cancel, while the broadcast is open; nothing once it is over."""
    lang = broadcast.language
    kb = InlineKeyboardBuilder()
    if broadcast.status is BroadcastStatus.RUNNING:
        kb.button(text=text(lang, "cast.btn.pause"), callback_data=CastCb(action="pause", id=broadcast.id))
    elif broadcast.status is BroadcastStatus.PAUSED:
        kb.button(text=text(lang, "cast.btn.resume"), callback_data=CastCb(action="resume", id=broadcast.id))
    else:
        return None
    kb.button(text=text(lang, "cast.btn.stop"), callback_data=CastCb(action="stop", id=broadcast.id))
    kb.adjust(2)
    return kb.as_markup()
