"""`GET /media/{slug}/{token}`: a file a user sent, fetched through the tenant's bot, for KIE to
download. The signed token names the Telegram file (see tenant_runtime.generation.media_links), so
the bot token never leaves the process."""

from __future__ import annotations

import mimetypes

import aiohttp
from aiogram.exceptions import TelegramAPIError
from aiohttp import web

from supervisor.http import error_response
from supervisor.webhooks import RuntimeResolver
from tenant_runtime.generation.media_links import read_media_token

__all__ = ["MediaFiles"]


class MediaFiles:
    def __init__(self, resolve: RuntimeResolver) -> None:
        self._resolve = resolve

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        runtime = self._resolve(request.match_info["slug"])
        if runtime is None:
            return error_response(404, "not found")
        config = runtime.config
        file_id = read_media_token(config.callback_secret, config.id, request.match_info["token"])
        if file_id is None:
            return error_response(404, "not found")
        try:
            found = await runtime.bot.get_file(file_id, request_timeout=15)
            if found.file_path is None:
                return error_response(404, "not found")
            data = await runtime.bot.download_file(found.file_path, timeout=60)
        except TelegramAPIError:
            return error_response(404, "not found")
        except (aiohttp.ClientError, TimeoutError):
            return error_response(502, "file temporarily unavailable")
        if data is None:
            return error_response(404, "not found")
        content_type = mimetypes.guess_type(found.file_path)[0] or "application/octet-stream"
        return web.Response(
            body=data.read(), content_type=content_type, headers={"Cache-Control": "private, max-age=3600"}
        )
