"""Telling users about their jobs: progress edits, the result itself, failures, admin alerts.

Results go by URL first; if Telegram cannot fetch it, the file is downloaded and uploaded; if that
fails too, the user gets the link (they paid for a result they can still get).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import httpx
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup

from shared.logs import get_logger
from shared.registry import ModelSpec
from tenant_runtime import keyboards
from tenant_runtime.jobs import Job, TenantHandle
from tenant_runtime.keyboards import TextFn

log = get_logger(__name__)

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
ALERT_EVERY = "6 hours"


def _title(job: Job, spec: ModelSpec | None) -> str:
    if spec is None:
        return job.model
    return spec.title.ru if job.language == "ru" else spec.title.en


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


class TelegramNotifier:
    def __init__(self, pool: asyncpg.Pool, http: httpx.AsyncClient) -> None:
        self._pool = pool
        self._http = http

    async def progress(self, tenant: TenantHandle, job: Job, spec: ModelSpec | None) -> None:
        if job.progress_message_id is None:
            return
        t = TextFn(job.language)
        state = t(f"job.state.{job.kie_state}") if job.kie_state in ("waiting", "queuing", "generating") else ""
        elapsed = (datetime.now(UTC) - job.created_at).total_seconds()
        body = t(
            "job.progress",
            title=_title(job, spec),
            state=state,
            elapsed=_clock(elapsed),
            eta=_clock(spec.typical_seconds if spec else 60),
        )
        with contextlib.suppress(TelegramAPIError, asyncio.TimeoutError):
            await tenant.bot.edit_message_text(
                text=body, chat_id=job.chat_id, message_id=job.progress_message_id, request_timeout=10
            )

    async def delivered(self, tenant: TenantHandle, job: Job, spec: ModelSpec | None) -> None:
        """Send the result. A user who blocked the bot counts as delivered: retrying cannot reach them."""
        t = TextFn(job.language)
        title = _title(job, spec)
        if job.progress_message_id is not None:
            with contextlib.suppress(TelegramAPIError, asyncio.TimeoutError):
                await tenant.bot.edit_message_text(
                    text=t("job.done", title=title),
                    chat_id=job.chat_id,
                    message_id=job.progress_message_id,
                    request_timeout=10,
                )
        markup = keyboards.result(job.id, t)
        caption = t("job.result_caption", title=title)
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
            for url in job.result_urls:
                if not await self._send_media(tenant, job, output, url, caption, markup):
                    await tenant.bot.send_message(
                        job.chat_id, t("job.result_link", title=title, url=url), reply_markup=markup, request_timeout=20
                    )
        except TelegramForbiddenError:
            log.warning("user blocked the bot; result not delivered", job_id=job.id)

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
        try:
            await method(job.chat_id, url, caption=caption, reply_markup=markup, request_timeout=60)
            return True
        except TelegramForbiddenError:
            raise
        except TelegramBadRequest as exc:
            log.info("telegram could not fetch the result URL; uploading it", job_id=job.id, error=exc.message)
        except (TimeoutError, TelegramAPIError) as exc:
            log.warning("result delivery by URL failed", job_id=job.id, error=type(exc).__name__)
        try:
            data = await self._download(url)
            if data is None:
                return False
            name = url.rsplit("/", 1)[-1].split("?")[0] or "result"
            upload = BufferedInputFile(data, filename=name)
            await method(job.chat_id, upload, caption=caption, reply_markup=markup, request_timeout=120)
            return True
        except TelegramForbiddenError:
            raise
        except (TimeoutError, httpx.HTTPError, TelegramAPIError) as exc:
            log.warning("result upload failed; sending the link", job_id=job.id, error=type(exc).__name__)
            return False

    async def _download(self, url: str) -> bytes | None:
        """The file, or None when it is larger than Telegram takes from bots (read in chunks, never whole)."""
        chunks: list[bytes] = []
        size = 0
        async with self._http.stream("GET", url, timeout=60, follow_redirects=True) as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    return None
                chunks.append(chunk)
        return b"".join(chunks)

    async def failed(self, tenant: TenantHandle, job: Job, spec: ModelSpec | None) -> None:
        t = TextFn(job.language)
        body = t(
            "job.failed",
            title=_title(job, spec),
            reason=t(f"fail.{job.fail_reason or 'provider'}"),
            money=t("money.returned" if job.price > 0 else "money.nothing"),
        )
        markup = keyboards.failure(job.id, t)
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
            except (TimeoutError, TelegramAPIError):
                pass
        with contextlib.suppress(TelegramAPIError, asyncio.TimeoutError):
            await tenant.bot.send_message(job.chat_id, body, reply_markup=markup, request_timeout=20)

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
