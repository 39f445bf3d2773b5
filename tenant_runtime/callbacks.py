"""Callback data of every inline button (aiogram factories keep each under Telegram's 64 bytes)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class MenuCb(CallbackData, prefix="m"):
    action: str  # main | cats | balance | topup | history | help | lang


class CategoryCb(CallbackData, prefix="c"):
    category: str
    page: int = 0


class ModelCb(CallbackData, prefix="md"):
    model: str
    choose: bool = False


class ValueCb(CallbackData, prefix="v"):
    step: int
    index: int  # position in the field's choices; -1 = skip / use default


class WizardCb(CallbackData, prefix="w"):
    action: str  # back | cancel | more (continue after files) | edit


class GenerateCb(CallbackData, prefix="g"):
    draft: str


class JobCb(CallbackData, prefix="j"):
    action: str  # repeat | change | retry
    job: int


class HistoryCb(CallbackData, prefix="h"):
    page: int


class TopupCb(CallbackData, prefix="t"):
    stars: int


class AdminCb(CallbackData, prefix="a"):
    action: str  # home | user | credit | debit | models | markup | refund | toggle
    model: str = ""
    page: int = 0
