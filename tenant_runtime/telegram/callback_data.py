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
    action: str  # repeat | change | retry | download
    job: int


class FollowCb(CallbackData, prefix="f"):
    job: int  # the finished job acted on
    model: str  # the follow-up model (an upscale, a 1080p version)
    index: int = 0  # which of the job's results, from 1, for per-result follow-ups


class HistoryCb(CallbackData, prefix="h"):
    page: int


class HistoryItemCb(CallbackData, prefix="hi"):
    job: int  # opens the job's card


class TopupCb(CallbackData, prefix="t"):
    stars: int  # a package; 0 asks for an amount of the user's choosing


class AdminCb(CallbackData, prefix="a"):
    action: str  # home | user | credit | debit | models | markup | refund | toggle
    model: str = ""
    page: int = 0


class AdminUserCb(CallbackData, prefix="au"):
    user: int  # opens the user's card (from a search's matches)


class ExportCb(CallbackData, prefix="ex"):
    kind: str = ""  # users | payments | generations; empty: the export screen
    sep: str = ""  # "," or ";"; empty: the admin's language decides


class ProfileCb(CallbackData, prefix="pf"):
    field: str  # welcome | help | description | short_description | support
    lang: str = ""  # ru | en; empty for the support contact


class BanCb(CallbackData, prefix="b"):
    user: int
    ban: bool  # True: ban, False: unban


class PromoCb(CallbackData, prefix="pr"):
    action: str  # list | new | disable
    code: str = ""


class CastCb(CallbackData, prefix="bc"):
    action: str  # new | nobutton | audience | send | drop | pause | resume | stop
    id: int = 0  # the broadcast (pause, resume, stop)
    audience: str = ""
