"""The bot's profile in Telegram (the command menu per language, /admin in admins' chats only, the
description and short description) made to match the shop's configuration.

Run by the process that holds the tenant, when it activates the bot and when the configuration changes
in place. Level-triggered and cheap at rest: the profile the shop wants is fingerprinted, and when
`bot_profiles` says that fingerprint was already applied to this bot, nothing is called at all (a
restart, a failover, a replica joining). Otherwise each part is read back from Telegram and only the
parts that differ are set, so one change costs one set call, and 429s wait in the session's middleware.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault

from shared.logs import get_logger
from tenant_runtime.config import Language, TenantConfig
from tenant_runtime.shop_profile import TextField
from tenant_runtime.telegram.texts import text

__all__ = ["ProfileKeeper", "ProfileSync", "desired_profile"]

log = get_logger(__name__)

USER_COMMANDS = ("start", "balance", "history", "help", "promo", "cancel")
ADMIN_COMMANDS = (*USER_COMMANDS, "admin")
CALL_TIMEOUT = 15
_LANGUAGES: tuple[Language, ...] = ("ru", "en")

Commands = tuple[tuple[str, str], ...]  # (command, description)


@dataclass(frozen=True)
class Profile:
    # language_code ("" = every language without its own list) -> the user command menu
    commands: dict[str, Commands]
    admin_commands: Commands  # in each admin's chat, in the shop's default language
    admins: tuple[int, ...]
    # (TextField.DESCRIPTION | SHORT_DESCRIPTION, language_code or "") -> text ("" clears it)
    descriptions: dict[tuple[TextField, str], str]

    def fingerprint(self, bot_id: int) -> str:
        body = json.dumps(
            [bot_id, self.commands, self.admin_commands, self.admins, sorted(map(list, self.descriptions.items()))],
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(body.encode()).hexdigest()


def _menu(language: Language, names: tuple[str, ...]) -> Commands:
    return tuple((name, text(language, f"command.{name}")) for name in names)


def desired_profile(config: TenantConfig) -> Profile:
    default = config.default_language
    commands: dict[str, Commands] = {"": _menu(default, USER_COMMANDS)}
    commands.update({lang: _menu(lang, USER_COMMANDS) for lang in _LANGUAGES})
    descriptions: dict[tuple[TextField, str], str] = {}
    for kind in (TextField.DESCRIPTION, TextField.SHORT_DESCRIPTION):
        descriptions[(kind, "")] = config.profile.text(default, kind) or ""
        for lang in _LANGUAGES:
            descriptions[(kind, lang)] = config.profile.text(lang, kind) or ""
    return Profile(commands, _menu(default, ADMIN_COMMANDS), tuple(sorted(config.admin_ids)), descriptions)


class ProfileSync:
    # Thousands of tenants activating at once (a first deployment) sync a few at a time: a profile is
    # not urgent, and replies to users share the same connections.
    _at_once = asyncio.Semaphore(4)

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def sync(self, bot: Bot, config: TenantConfig) -> bool:
        """True when something was checked against Telegram (the profile changed since it was applied)."""
        async with self._at_once:
            return await self._sync(bot, config)

    async def _sync(self, bot: Bot, config: TenantConfig) -> bool:
        want = desired_profile(config)
        fingerprint = want.fingerprint(config.bot_id)
        row = await self._pool.fetchrow(
            "SELECT bot_id, fingerprint, admin_ids FROM bot_profiles WHERE tenant_id = $1", config.id
        )
        if row is not None and row["fingerprint"] == fingerprint:
            return False
        for language, menu in want.commands.items():
            await _ensure_commands(bot, menu, BotCommandScopeDefault(), language)
        reached = [a for a in want.admins if await _ensure_admin_menu(bot, want.admin_commands, a)]
        if row is not None and row["bot_id"] == config.bot_id:
            for gone in set(row["admin_ids"]) - set(want.admins):
                with contextlib.suppress(TelegramBadRequest):  # the chat is gone: so is the menu in it
                    await bot.delete_my_commands(scope=BotCommandScopeChat(chat_id=gone), request_timeout=CALL_TIMEOUT)
        for (kind, language), wanted in want.descriptions.items():
            await _ensure_description(bot, kind, language, wanted)
        await self._pool.execute(
            """INSERT INTO bot_profiles (tenant_id, bot_id, fingerprint, admin_ids) VALUES ($1, $2, $3, $4)
               ON CONFLICT (tenant_id) DO UPDATE SET bot_id = EXCLUDED.bot_id, fingerprint = EXCLUDED.fingerprint,
                   admin_ids = EXCLUDED.admin_ids, synced_at = now()""",
            config.id,
            config.bot_id,
            # An admin who has not written to the bot yet has no chat to put the menu in: not applied,
            # so the next activation tries again.
            fingerprint if len(reached) == len(want.admins) else "incomplete",
            reached,
        )
        return True


async def _ensure_commands(
    bot: Bot, menu: Commands, scope: BotCommandScopeDefault | BotCommandScopeChat, language: str
) -> None:
    code = language or None
    current = await bot.get_my_commands(scope=scope, language_code=code, request_timeout=CALL_TIMEOUT)
    if tuple((c.command, c.description) for c in current) != menu:
        commands = [BotCommand(command=name, description=about) for name, about in menu]
        await bot.set_my_commands(commands, scope=scope, language_code=code, request_timeout=CALL_TIMEOUT)


async def _ensure_admin_menu(bot: Bot, menu: Commands, admin: int) -> bool:
    try:
        await _ensure_commands(bot, menu, BotCommandScopeChat(chat_id=admin), "")
    except TelegramBadRequest:
        return False  # "chat not found": this admin never wrote to the bot
    return True


async def _ensure_description(bot: Bot, kind: TextField, language: str, wanted: str) -> None:
    code = language or None
    if kind is TextField.DESCRIPTION:
        current = (await bot.get_my_description(language_code=code, request_timeout=CALL_TIMEOUT)).description
        if current != wanted:
            await bot.set_my_description(description=wanted, language_code=code, request_timeout=CALL_TIMEOUT)
    else:
        short = await bot.get_my_short_description(language_code=code, request_timeout=CALL_TIMEOUT)
        if short.short_description != wanted:
            await bot.set_my_short_description(
                short_description=wanted, language_code=code, request_timeout=CALL_TIMEOUT
            )


class ProfileKeeper:
    """One bot's profile kept in line while this process holds it: one sync at a time (two overlapping
    ones could leave Telegram with the older profile while `bot_profiles` records the newer); a change
    during a sync makes it run once more, on the configuration as it is then. Best effort: a profile
    Telegram did not take (a 5xx, a timeout) is tried at the next activation or change, and never stops
    the bot from serving. The task joins the runtime's singletons, so a step-down cancels it."""

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        bot: Bot,
        config: Callable[[], TenantConfig],
        tasks: set[asyncio.Task[None]],
    ) -> None:
        self._pool = pool
        self._bot = bot
        self._config = config
        self._tasks = tasks
        self._due = False
        self._task: asyncio.Task[None] | None = None

    def want(self) -> None:
        self._due = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
            self._tasks.add(self._task)
            self._task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        while self._due:
            self._due = False
            config = self._config()
            try:
                if await ProfileSync(self._pool()).sync(self._bot, config):
                    log.info("bot profile checked against Telegram", tenant=config.slug)
            except Exception as exc:
                log.warning("bot profile not synced", tenant=config.slug, error=type(exc).__name__)
                return
