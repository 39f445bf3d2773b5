"""`POST /webhook/{slug}`: a Telegram update for one tenant, the way aiogram's webhook handler works:
resolve the tenant, verify its secret header, read the body, feed the runtime.

The answer tells Telegram what to do: 200 once the update is accepted durably (or is a duplicate),
503 while the database is unreachable (Telegram keeps the update and redelivers it), 4xx for a
request that is not a Telegram update for a known bot.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from aiohttp import web

from shared import strict
from supervisor.http import error_response, json_response
from tenant_runtime.runtime import TenantRuntime
from tenant_runtime.updates import Outcome

__all__ = ["RuntimeResolver", "TelegramWebhook", "read_json"]

RuntimeResolver = Callable[[str], TenantRuntime | None]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
SECRET_MAX_CHARS = 256  # Telegram's secret_token: 1-256 characters of A-Za-z0-9_-


async def read_json(request: web.Request, max_body: int) -> object | web.Response:
    """The request's JSON body, or the 4xx response that says why not (too large, not JSON, nested
    deeper than any real sender nests: see shared.strict)."""
    if request.content_length is not None and request.content_length > max_body:
        return error_response(413, "body too large")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "body too large")
    try:
        return strict.loads(body)
    except strict.JsonError as exc:
        return error_response(400, str(exc))


class TelegramWebhook:
    def __init__(self, resolve: RuntimeResolver, *, max_body: int) -> None:
        self._resolve = resolve
        self._max_body = max_body

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        runtime = self._resolve(request.match_info["slug"])
        if runtime is None:
            return error_response(404, "unknown bot")
        # Shape first: a header may hold non-ASCII (even lone surrogates), which compare_digest refuses.
        given = strict.token(request.headers.get(SECRET_HEADER, ""), alphabet=strict.URLSAFE, max_len=SECRET_MAX_CHARS)
        if given is None or not hmac.compare_digest(given.encode(), runtime.config.webhook_secret.encode()):
            return error_response(401, "bad secret token")
        payload = await read_json(request, self._max_body)
        if isinstance(payload, web.Response):
            return payload
        outcome = await runtime.handle_webhook(payload)
        if outcome is Outcome.INVALID:
            return error_response(400, "not a Telegram update")
        if outcome is Outcome.UNAVAILABLE:
            return error_response(503, "temporarily unavailable")
        return json_response({"ok": True})
