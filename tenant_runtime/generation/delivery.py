"""Telling users about their jobs: progress edits, the result itself, failures, admin alerts.

Results go by URL first; if Telegram cannot fetch it, the file is downloaded and uploaded; if that
fails too, the user gets the link (they paid for a result they can still get). The URL comes from a
KIE callback, so the download is guarded like any untrusted fetch (tenant_runtime.generation.downloads).
Several results of one task (Suno's two tracks, Midjourney's four images) go as one album with the
caption on its first item, and the buttons (Repeat, the follow-ups) in a message right after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import aiohttp
import asyncpg
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardMarkup,
    InputMediaAudio,
    InputMediaDocument,
    InputMediaLivePhoto,
    InputMediaPhoto,
    InputMediaVideo,
)

from shared.logs import get_logger
from shared.registry import ModelSpec, Registry
from tenant_runtime.billing.job_money import JobMoney
from tenant_runtime.generation.downloads import Downloader, DownloadRefused
from tenant_runtime.generation.follow_ups import offered
from tenant_runtime.generation.jobs import Job, TenantHandle
from tenant_runtime.telegram import keyboards
from tenant_runtime.telegram.job_texts import done_text, failed_view, job_progress
from tenant_runtime.telegram.keyboards import TextFn
from tenant_runtime.telegram.money_texts import money_line

log = get_logger(__name__)

# Telegram out of reach from here (or this process's hold on the bot lapsed), a 5xx, a flood wait, a
# revoked token: the user may not have been told, and trying again later is what tells them.
UNREACHABLE = (TelegramServerError, TelegramRetryAfter, TelegramUnauthorizedError, TelegramNetworkError)

ALERT_EVERY = "6 hours"
ALBUM_MAX = 10  # Telegram's limit for one media group
AlbumItem = InputMediaAudio | InputMediaDocument | InputMediaLivePhoto | InputMediaPhoto | InputMediaVideo
_ALBUM_ITEMS: dict[str, Callable[..., AlbumItem]] = {
    "image": InputMediaPhoto,
    "video": InputMediaVideo,
    "audio": InputMediaAudio,
}


def _title(job: Job, spec: ModelSpec | None) -> str:
    if spec is None:
        return job.model
    return spec.title.ru if job.language == "ru" else spec.title.en


class TelegramNotifier:
    def __init__(
        self, pool: asyncpg.Pool, *, downloads: Downloader | None = None, registry: Registry | None = None
    ) -> None:
        # Result downloads need a connector that checks every address it connects to, which Downloader
        # builds per download (downloads are a rare fallback).
        self._pool = pool
        self._downloads = downloads or Downloader()
        self._registry = registry  # offers the follow-ups (upscale, 1080p) under a result

    def _result_markup(self, tenant: TenantHandle, job: Job, spec: ModelSpec | None, t: TextFn) -> InlineKeyboardMarkup:
        follow_ups = [
            (follow_up, len(job.result_urls))
            for follow_up in (self._registry.follow_ups(job.model) if self._registry else ())
            if follow_up.id not in tenant.config.disabled_models and offered(follow_up, job)
        ]
        repeatable = spec is None or spec.follow_up is None
        return keyboards.result(job.id, t, follow_ups=follow_ups, repeatable=repeatable)

    async def progress(self, tenant: TenantHandle, job: Job, spec: ModelSpec | None) -> None:
        if job.progress_message_id is None:
            return
        body = job_progress(job, spec)
        with contextlib.suppress(TelegramAPIError, asyncio.TimeoutError):
            await tenant.bot.edit_message_text(
                text=body, chat_id=job.chat_id, message_id=job.progress_message_id, request_timeout=10
            )

    async def delivered(self, tenant: TenantHandle, job: Job, spec: ModelSpec | None, money: JobMoney) -> None:
        """Send the result. A user who blocked the bot counts as delivered: retrying cannot reach them."""
        t = TextFn(job.language)
        title = _title(job, spec)
        if job.progress_message_id is not None:
            with contextlib.suppress(TelegramAPIError, asyncio.TimeoutError):
                await tenant.bot.edit_message_text(
                    text=done_text(job, spec),
                    chat_id=job.chat_id,
                    message_id=job.progress_message_id,
                    request_timeout=10,
                )
        markup = self._result_markup(tenant, job, spec, t)
        money_text = money_line(job.language, money)
        caption = t("job.result_caption", title=title, money=money_text)
        try:
            if job.result_text is not None or not job.result_urls:
                await tenant.bot.send_message(
                    job.chat_id,
                    f"{caption}\n\n{job.result_text or ''}",
                    reply_markup=markup,
                    parse_mode=None,
                    request_timeout=20,
                )
                return
            output = spec.output if spec else "image"
            many = len(job.result_urls) > 1 and output in _ALBUM_ITEMS
            if many and await self._send_album(tenant, job, output, caption):
                # The result is with the user; the buttons under it are a convenience that must not make
                # a retry send the whole album again.
                with contextlib.suppress(TelegramAPIError, asyncio.TimeoutError):
                    await tenant.bot.send_message(
                        job.chat_id, t("job.actions", title=title), reply_markup=markup, request_timeout=20
                    )
                return
            for url in job.result_urls:
                if not await self._send_media(tenant, job, output, url, caption, markup):
                    await tenant.bot.send_message(
                        job.chat_id,
                        t("job.result_link", title=title, url=url, money=money_text),
                        reply_markup=markup,
                        request_timeout=20,
                    )
        except TelegramForbiddenError:
            log.warning("user blocked the bot; result not delivered", job_id=job.id)
        except TelegramBadRequest as exc:
            # The chat is gone or the message was refused as such: no retry can change that.
            log.warning("the user's chat refused the result; not delivered", job_id=job.id, error=exc.message)

    async def _send_media(
        self, tenant: TenantHandle, job: Job, output: str, url: str, caption: str, markup: InlineKeyboardMarkup
    ) -> bool:
        bot = tenant.bot
        method: Callable[..., Awaitable[object]]
        if output == "video":
            method = bot.send_video
        elif output == "audio":
            method = bot.send_audio
        else:
            method = bot.send_photo

        async def upload() -> None:
            file = BufferedInputFile(await self._downloads.fetch(url), filename=_file_name(url))
            await method(job.chat_id, file, caption=caption, reply_markup=markup, request_timeout=120)

        return await _by_url_else_upload(
            job,
            "result",
            lambda: method(job.chat_id, url, caption=caption, reply_markup=markup, request_timeout=60),
            upload,
        )

    async def _send_album(self, tenant: TenantHandle, job: Job, output: str, caption: str) -> bool:
        """All results as one album (by URL, else uploaded); False if neither worked (links follow)."""
        urls = job.result_urls[:ALBUM_MAX]
        item = _ALBUM_ITEMS[output]

        def album(files: list[str] | list[BufferedInputFile]) -> list[AlbumItem]:
            return [item(media=f, caption=caption if i == 0 else None) for i, f in enumerate(files)]

        async def upload() -> None:
            files = [BufferedInputFile(await self._downloads.fetch(url), filename=_file_name(url)) for url in urls]
            await tenant.bot.send_media_group(job.chat_id, media=album(files), request_timeout=180)

        return await _by_url_else_upload(
            job,
            "album",
            lambda: tenant.bot.send_media_group(job.chat_id, media=album(list(urls)), request_timeout=60),
            upload,
        )

    async def failed(self, tenant: TenantHandle, job: Job, spec: ModelSpec | None, money: JobMoney) -> None:
        """Tell the user the job failed and what became of the money: in its progress message while that
        is there, else in a new one. Telegram out of reach (network, 5xx, 429, a revoked token) raises, so
        the caller tries again later; a user who blocked the bot, or a chat that is gone, counts as told."""
        body, markup = failed_view(job, spec, money, tenant.config.profile.support_url)
        if job.progress_message_id is not None:
            try:
                await tenant.bot.edit_message_text(
                    text=body,
                    chat_id=job.chat_id,
                    message_id=job.progress_message_id,
                    reply_markup=markup,
                    request_timeout=10,
                )
                return
            except TelegramBadRequest as exc:
                if "not modified" in exc.message:
                    return  # an earlier try edited it and only its answer was lost: the user sees it
                # The progress message is gone (deleted, too old to edit): a new message tells it.
            except TelegramForbiddenError:
                log.warning("user blocked the bot; failure not told", job_id=job.id)
                return
        try:
            await tenant.bot.send_message(job.chat_id, body, reply_markup=markup, request_timeout=20)
        except (TelegramForbiddenError, TelegramBadRequest) as exc:
            log.warning("the user's chat cannot be written to; failure not told", job_id=job.id, error=exc.message)

    async def alert_admins(self, tenant: TenantHandle, key: str) -> None:
        """Once per tenant and kind per period, not once per user."""
        config = tenant.config
        due = await self._pool.fetchval(
            f"""INSERT INTO tenant_alerts (tenant_id, kind) VALUES ($1, $2)
                ON CONFLICT (tenant_id, kind) DO UPDATE SET sent_at = now()
                WHERE tenant_alerts.sent_at < now() - interval '{ALERT_EVERY}'
                RETURNING 1""",
            config.id,
            key,
        )
        if not due:
            return
        log.warning("alerting tenant admins", tenant=config.slug, alert=key, admins=len(config.admin_ids))
        t = TextFn(config.default_language)
        for admin in config.admin_ids:
            with contextlib.suppress(TelegramAPIError, asyncio.TimeoutError):
                await tenant.bot.send_message(admin, t(key), request_timeout=10)


def _file_name(url: str) -> str:
    return url.rsplit("/", 1)[-1].split("?")[0] or "result"


async def _by_url_else_upload(
    job: Job, what: str, by_url: Callable[[], Awaitable[object]], upload: Callable[[], Awaitable[None]]
) -> bool:
    """Send by URL (Telegram fetches it), else download it here and upload it; False when neither worked
    (the caller sends links). Telegram out of reach, or the user's block, is the caller's to handle: a
    fallback then would only send a second copy of what may have landed, or a link for good."""
    try:
        await by_url()
        return True
    except TelegramEntityTooLarge as exc:  # a network-class error in aiogram, but an answer about the file
        log.info(f"the {what} is too large to send by URL; uploading it", job_id=job.id, error=exc.message)
    except (*UNREACHABLE, TelegramForbiddenError):
        raise
    except TelegramBadRequest as exc:
        log.info(f"telegram could not fetch the {what} by URL; uploading it", job_id=job.id, error=exc.message)
    except (TimeoutError, TelegramAPIError) as exc:
        log.warning(f"{what} delivery by URL failed", job_id=job.id, error=type(exc).__name__)
    try:
        await upload()
        return True
    except TelegramEntityTooLarge as exc:
        log.warning(f"the {what} is too large to upload; sending the link", job_id=job.id, error=exc.message)
    except (*UNREACHABLE, TelegramForbiddenError):
        raise
    except DownloadRefused as exc:
        log.warning(f"{what} download refused; sending the link", job_id=job.id, reason=str(exc))
    except (TimeoutError, aiohttp.ClientError, TelegramAPIError) as exc:
        log.warning(f"{what} upload failed; sending the link", job_id=job.id, error=type(exc).__name__)
    return False
