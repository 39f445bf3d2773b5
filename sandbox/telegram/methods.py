"""Bot API dispatch: token and fault checks, the call log, and the methods about updates and the bot.

Faults are applied here, before any handler runs, so an injected 429 or 5xx never half-executes a call:
the bot sees exactly what Telegram would show it and the chat stays untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from dataclasses import dataclass
from http import HTTPStatus
from itertools import islice
from urllib.parse import urlsplit

from sandbox.telegram import messages as fake_telegram_messages
from sandbox.telegram import payments as fake_telegram_payments
from sandbox.telegram.messages import Handler
from sandbox.telegram.model import (
    ApiCall,
    ApiError,
    BotState,
    JSONObject,
    Poller,
    Update,
    WebhookConfig,
    bad_request,
)
from sandbox.telegram.params import Params
from sandbox.telegram.state import TelegramState, unauthorized

WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
TERMINATED = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
MAX_POLL_TIMEOUT = 50
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")


@dataclass(frozen=True)
class ApiReply:
    status: int
    body: JSONObject


class BotApi:
    def __init__(self, state: TelegramState) -> None:
        self._state = state
        handlers: dict[str, Handler] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getMyCommands": self._get_my_commands,
            "setMyDescription": self._describer("description", 512),
            "getMyDescription": self._description_reader("description"),
            "setMyShortDescription": self._describer("short_description", 120),
            "getMyShortDescription": self._description_reader("short_description"),
            "getFile": self._get_file,
            **fake_telegram_messages.HANDLERS,
            **fake_telegram_payments.HANDLERS,
        }
        self._methods = {name.lower(): (name, handler) for name, handler in handlers.items()}

    async def call(self, token: str, method: str, params: Params) -> ApiReply:
        bot = self._state.bots.get(token)
        if bot is None:
            return ApiReply(401, unauthorized().to_api())
        name, handler = self._methods.get(method.lower(), (method, None))
        call = ApiCall(method=name, params=params.logged(), at=time.time())
        bot.calls.append(call)
        try:
            if bot.faults.revoked:
                raise unauthorized()
            if bot.faults.latency:
                await asyncio.sleep(bot.faults.latency)
            if handler is None:
                raise ApiError(404, "Not Found")
            self._inject_faults(bot, name.lower())
            result = await handler(self._state, bot, params)
            reply = ApiReply(200, {"ok": True, "result": result})
        except ApiError as exc:
            reply = ApiReply(exc.code, exc.to_api())
        call.status = reply.status
        return reply

    async def execute_webhook_reply(self, bot: BotState, params: Params) -> None:
        """Telegram runs a call found in a webhook response and tells nobody how it went."""
        method = params.values.pop("method", None)
        if isinstance(method, str):
            await self.call(bot.token, method, params)

    @staticmethod
    def _inject_faults(bot: BotState, method: str) -> None:
        faults = bot.faults
        if faults.bad_requests > 0:
            faults.bad_requests -= 1
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if faults.server_errors > 0:
            faults.server_errors -= 1
            raise ApiError(faults.server_error_status, HTTPStatus(faults.server_error_status).phrase)
        for rule in faults.rate_limits:
            if rule.method not in (None, method):
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining == 0:
                    faults.rate_limits.remove(rule)
            raise ApiError(429, f"Too Many Requests: retry after {rule.retry_after}", rule.retry_after)

    # --- the bot ----------------------------------------------------------------------------------------

    @staticmethod
    async def _get_me(state: TelegramState, bot: BotState, p: Params) -> JSONObject:
        return bot.user.to_api() | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    @staticmethod
    def _command_key(p: Params, bot: BotState) -> tuple[str, str]:
        scope = p.opt_json("scope") or {"type": "default"}
        if not isinstance(scope, dict) or not isinstance(scope.get("type"), str):
            raise bad_request("can't parse BotCommandScope JSON object")
        # Like Telegram: a chat scope only for a chat the bot can reach (the user wrote to it).
        if scope["type"] in ("chat", "chat_administrators", "chat_member") and scope.get("chat_id") not in bot.chats:
            raise bad_request("chat not found")
        return json.dumps(scope, sort_keys=True), p.opt_str("language_code") or ""

    @staticmethod
    def _describer(kind: str, limit: int) -> Handler:
        async def set_description(state: TelegramState, bot: BotState, p: Params) -> bool:
            text = p.opt_str(kind) or ""
            if len(text) > limit:
                raise bad_request(f"{kind.upper()}_INVALID")
            key = (kind, p.opt_str("language_code") or "")
            if text:
                bot.descriptions[key] = text
            else:
                bot.descriptions.pop(key, None)
            return True

        return set_description

    @staticmethod
    def _description_reader(kind: str) -> Handler:
        async def get_description(state: TelegramState, bot: BotState, p: Params) -> JSONObject:
            return {kind: bot.descriptions.get((kind, p.opt_str("language_code") or ""), "")}

        return get_description

    async def _set_my_commands(self, state: TelegramState, bot: BotState, p: Params) -> bool:
        commands = p.opt_json("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("can't parse commands JSON object")
        stored: list[JSONObject] = []
        for command in commands:
            name, description = (
                (command.get("command"), command.get("description")) if isinstance(command, dict) else (None, None)
            )
            if not isinstance(name, str) or not _COMMAND.fullmatch(name.removeprefix("/")):
                raise bad_request("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            stored.append({"command": name.removeprefix("/"), "description": description})
        key = self._command_key(p, bot)
        if stored:
            bot.commands[key] = stored
        else:
            bot.commands.pop(key, None)
        return True

    async def _delete_my_commands(self, state: TelegramState, bot: BotState, p: Params) -> bool:
        bot.commands.pop(self._command_key(p, bot), None)
        return True

    async def _get_my_commands(self, state: TelegramState, bot: BotState, p: Params) -> list[JSONObject]:
        return list(bot.commands.get(self._command_key(p, bot), []))

    @staticmethod
    async def _get_file(state: TelegramState, bot: BotState, p: Params) -> JSONObject:
        stored = bot.files.get(p.opt_str("file_id") or "")
        if stored is None:
            raise bad_request("invalid file_id")
        return stored.file_to_api()

    # --- updates ----------------------------------------------------------------------------------------

    @staticmethod
    def _allowed_updates(bot: BotState, p: Params) -> None:
        """allowed_updates sticks: it applies to every update created after the call that set it."""
        allowed = p.opt_json("allowed_updates")
        if allowed is None:
            return
        if not isinstance(allowed, list) or not all(isinstance(kind, str) for kind in allowed):
            raise bad_request("can't parse allowed_updates JSON object")
        bot.allowed_updates = allowed or None

    async def _get_updates(self, state: TelegramState, bot: BotState, p: Params) -> list[JSONObject]:
        if bot.webhook is not None:
            raise ApiError(409, WEBHOOK_ACTIVE)
        self._allowed_updates(bot, p)
        limit = min(max(p.opt_int("limit") or 100, 1), 100)
        timeout = min(max(p.opt_int("timeout") or 0, 0), MAX_POLL_TIMEOUT)
        if bot.poller is not None:
            bot.poller.terminated = True
            bot.poller.wake.set()
            bot.poller = None
        self._confirm(bot, p.opt_int("offset"))
        if not (bot.pending or bot.redeliveries) and timeout and not state.closing:
            poller = bot.poller = Poller()
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await poller.wake.wait()
            finally:
                if bot.poller is poller:
                    bot.poller = None
            if poller.terminated:
                raise ApiError(409, TERMINATED)
            if bot.webhook is not None:
                raise ApiError(409, WEBHOOK_ACTIVE)
        return [update.to_api() for update in self._take(bot, limit)]

    @staticmethod
    def _confirm(bot: BotState, offset: int | None) -> None:
        """Telegram forgets updates below the offset for good; a negative offset keeps only the newest."""
        if offset is None:
            return
        if offset < 0:
            while len(bot.pending) > -offset:
                bot.pending.popitem(last=False)
            return
        while bot.pending and next(iter(bot.pending)) < offset:
            bot.pending.popitem(last=False)

    @staticmethod
    def _take(bot: BotState, limit: int) -> list[Update]:
        # Redelivered copies go first and only once: they sit below the offset the bot already confirmed.
        batch = [bot.redeliveries.popleft() for _ in range(min(limit, len(bot.redeliveries)))]
        return batch + list(islice(bot.pending.values(), limit - len(batch)))

    async def _set_webhook(self, state: TelegramState, bot: BotState, p: Params) -> bool:
        url = p.opt_str("url") or ""
        if not url:
            await state.delete_webhook(bot, drop_pending=p.flag("drop_pending_updates"))
            return True
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.opt_str("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        self._allowed_updates(bot, p)
        hook = WebhookConfig(
            url=url,
            secret_token=secret,
            max_connections=min(max(p.opt_int("max_connections") or 40, 1), 100),
        )
        await state.set_webhook(bot, hook, self.execute_webhook_reply, drop_pending=p.flag("drop_pending_updates"))
        return True

    @staticmethod
    async def _delete_webhook(state: TelegramState, bot: BotState, p: Params) -> bool:
        await state.delete_webhook(bot, drop_pending=p.flag("drop_pending_updates"))
        return True

    @staticmethod
    async def _get_webhook_info(state: TelegramState, bot: BotState, p: Params) -> JSONObject:
        return state.webhook_info(bot).to_api()
