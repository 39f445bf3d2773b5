"""`python -m supervisor …`: run the process, migrate, manage tenants and keys.

Secrets are read from the environment (BOT_TOKEN, KIE_API_KEY, KIE_WEBHOOK_KEY) or a hidden prompt,
never from the command line, and every printed secret is masked.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import cast

import asyncpg

from shared import migrations
from shared.crypto import generate_key
from shared.db import connect_dedicated, create_pool
from shared.logs import configure_logging
from shared.settings import Settings
from supervisor import __version__
from supervisor.bootstrap import BootError, load_keys, resolve_dsn, settings_or_report
from supervisor.tenants import NewTenant, TenantChanges, TenantError, TenantStore, describe
from supervisor.validation import (
    InputError,
    parse_admin_ids,
    parse_bot_token,
    parse_display_name,
    parse_kie_key,
    parse_markup,
    parse_slug,
    parse_stars_packages,
    parse_stars_rate,
)
from tenant_runtime.config import BotMode, Language


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m supervisor", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="migrate, then serve every enabled tenant (the default for deploys)")
    sub.add_parser("migrate", help="apply pending SQL migrations")

    tenants = sub.add_parser("tenants", help="add, list, show, update, disable, enable, remove tenants")
    tsub = tenants.add_subparsers(dest="action", required=True)
    add = tsub.add_parser("add", help="add a tenant; BOT_TOKEN and KIE_API_KEY from env or prompt")
    add.add_argument("slug")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--admins", default="", help="admin Telegram ids, comma-separated")
    add.add_argument("--markup", default="2.0")
    add.add_argument("--language", choices=["ru", "en"], default="ru")
    add.add_argument("--mode", choices=["webhook", "polling"], default=None)
    add.add_argument("--welcome-bonus", type=int, default=0, help="minor units credited to each new user")
    add.add_argument("--referral-bonus", type=int, default=0, help="minor units for the referrer")
    add.add_argument("--stars-packages", help="Stars top-up packages, e.g. 50,100,500 (default: STARS_PACKAGES)")
    add.add_argument("--stars-rate", help="minor units credited per Star (default: STARS_RATE_MINOR)")
    add.add_argument("--verify", action="store_true", help="call getMe before saving")
    lst = tsub.add_parser("list")
    lst.add_argument("--json", action="store_true")
    show = tsub.add_parser("show")
    show.add_argument("slug")
    show.add_argument("--json", action="store_true")
    upd = tsub.add_parser("update", help="change fields; --bot-token/--kie-key read new secrets from env or prompt")
    upd.add_argument("slug")
    upd.add_argument("--name")
    upd.add_argument("--admins")
    upd.add_argument("--markup")
    upd.add_argument("--language", choices=["ru", "en"])
    upd.add_argument("--mode", choices=["webhook", "polling"])
    upd.add_argument("--welcome-bonus", type=int)
    upd.add_argument("--referral-bonus", type=int)
    upd.add_argument("--stars-packages", help="e.g. 50,100,500, or 'default' for STARS_PACKAGES")
    upd.add_argument("--stars-rate", help="minor units per Star, or 'default' for STARS_RATE_MINOR")
    upd.add_argument("--bot-token", action="store_true", help="replace the bot token (BOT_TOKEN or prompt)")
    upd.add_argument("--kie-key", action="store_true", help="replace the KIE API key (KIE_API_KEY or prompt)")
    upd.add_argument("--kie-webhook-key", action="store_true", help="set KIE's webhook HMAC key (KIE_WEBHOOK_KEY)")
    upd.add_argument("--verify", action="store_true", help="call getMe with the new token before saving")
    for name in ("disable", "enable", "remove"):
        p = tsub.add_parser(name)
        p.add_argument("slug")

    keys = sub.add_parser("keys", help="master key management")
    ksub = keys.add_subparsers(dest="action", required=True)
    ksub.add_parser("rotate", help="re-encrypt every secret under the first key of MASTER_KEYS")
    ksub.add_parser("generate", help="print a new random key for MASTER_KEYS")
    return parser


def _secret(env_name: str, prompt: str) -> str:
    value = os.environ.get(env_name)
    if value:
        return value
    if not sys.stdin.isatty():
        raise InputError(f"{env_name} is not set and there is no terminal to prompt for it")
    value = getpass.getpass(f"{prompt}: ")
    if not value:
        raise InputError(f"no {prompt.lower()} given")
    return value


async def _verify_token(settings: Settings, token: str) -> None:
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.exceptions import TelegramAPIError, TelegramUnauthorizedError

    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base))
    try:
        me = await Bot(token, session=session).get_me(request_timeout=10)
    except TelegramUnauthorizedError:
        raise InputError("Telegram rejected the bot token (401 Unauthorized)") from None
    except (TelegramAPIError, OSError, TimeoutError) as exc:
        raise InputError(f"could not verify the token with Telegram: {type(exc).__name__}") from None
    finally:
        await session.close()
    print(f"verified: @{me.username}")


def _print_tenant(info: dict[str, object]) -> None:
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key.ljust(width)}  {value if value is not None else '-'}")


async def _tenants(args: argparse.Namespace, settings: Settings, store: TenantStore) -> None:
    action = args.action
    if action == "add":
        slug = parse_slug(args.slug)
        name = parse_display_name(args.name)
        admins = parse_admin_ids(args.admins)
        markup = parse_markup(args.markup)
        if args.welcome_bonus < 0 or args.referral_bonus < 0:
            raise InputError("bonuses must be zero or positive")
        packages = parse_stars_packages(args.stars_packages) if args.stars_packages is not None else ()
        rate = parse_stars_rate(args.stars_rate) if args.stars_rate is not None else 0
        token, bot_id = parse_bot_token(_secret("BOT_TOKEN", "Bot token"))
        kie_key = parse_kie_key(_secret("KIE_API_KEY", "KIE API key"))
        if args.verify:
            await _verify_token(settings, token)
        config = await store.add(
            NewTenant(
                slug=slug,
                display_name=name,
                bot_token=token,
                bot_id=bot_id,
                kie_api_key=kie_key,
                admin_ids=admins,
                markup=markup,
                default_language=cast(Language, args.language),
                bot_mode=cast(BotMode | None, args.mode),
                kie_webhook_key=os.environ.get("KIE_WEBHOOK_KEY") or None,
                welcome_bonus=args.welcome_bonus,
                referral_bonus=args.referral_bonus,
                stars_packages=packages or None,
                stars_rate_minor=rate or None,
            )
        )
        print(f"added tenant {config.slug} (lock key {config.lock_key}, webhook path /webhook/{config.slug})")
    elif action == "list":
        configs = await store.all()
        rows = [describe(c) for c in configs]
        if args.json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
        elif not rows:
            print("no tenants yet: add one with `python -m supervisor tenants add <slug> --name ...`")
        else:
            print(f"{'SLUG':<20} {'STATUS':<14} {'BOT TOKEN':<12} {'ADMINS':<24} {'LOCK':>6}  NAME")
            for r in rows:
                admin_list = ",".join(str(a) for a in cast(list[int], r["admin_ids"])) or "-"
                print(
                    f"{r['slug']!s:<20} {r['status']!s:<14} {r['bot_token']!s:<12} {admin_list:<24} "
                    f"{r['lock_key']!s:>6}  {r['display_name']}"
                )
    elif action == "show":
        info = describe(await store.get(parse_slug(args.slug)))
        if args.json:
            print(json.dumps(info, ensure_ascii=False, indent=2))
        else:
            _print_tenant(info)
    elif action == "update":
        slug = parse_slug(args.slug)
        if (args.welcome_bonus or 0) < 0 or (args.referral_bonus or 0) < 0:
            raise InputError("bonuses must be zero or positive")
        new_token = parse_bot_token(_secret("BOT_TOKEN", "Bot token")) if args.bot_token else None
        if new_token is not None and args.verify:
            await _verify_token(settings, new_token[0])
        changes = TenantChanges(
            display_name=parse_display_name(args.name) if args.name is not None else None,
            bot_token=new_token,
            kie_api_key=parse_kie_key(_secret("KIE_API_KEY", "KIE API key")) if args.kie_key else None,
            kie_webhook_key=_secret("KIE_WEBHOOK_KEY", "KIE webhook key") if args.kie_webhook_key else None,
            admin_ids=parse_admin_ids(args.admins) if args.admins is not None else None,
            markup=parse_markup(args.markup) if args.markup is not None else None,
            default_language=args.language,
            bot_mode=args.mode,
            welcome_bonus=args.welcome_bonus,
            referral_bonus=args.referral_bonus,
            stars_packages=parse_stars_packages(args.stars_packages) if args.stars_packages is not None else None,
            stars_rate_minor=parse_stars_rate(args.stars_rate) if args.stars_rate is not None else None,
        )
        config = await store.update(slug, changes)
        print(f"updated tenant {config.slug} (config version {config.config_version})")
    elif action in ("disable", "enable"):
        config = await store.set_status(parse_slug(args.slug), "disabled" if action == "disable" else "enabled")
        print(f"tenant {config.slug} is now {config.status}")
    elif action == "remove":
        await store.remove(parse_slug(args.slug))
        print(f"removed tenant {args.slug}")


async def _with_store(settings: Settings, body: Callable[[TenantStore], Awaitable[None]]) -> None:
    keys = load_keys(settings)
    dsn = await resolve_dsn(settings)
    conn = await connect_dedicated(dsn, application_name="tg-supervisor-cli")
    try:
        await migrations.apply_all(conn)
    finally:
        await conn.close()
    pool = await create_pool(dsn, 2, application_name="tg-supervisor-cli")
    try:
        await body(TenantStore(pool, keys))
    finally:
        await pool.close()


async def _migrate(settings: Settings) -> None:
    dsn = await resolve_dsn(settings)
    conn = await connect_dedicated(dsn, application_name="tg-supervisor-migrate")
    try:
        applied = await migrations.apply_all(conn)
    finally:
        await conn.close()
    print(f"applied migrations: {', '.join(map(str, applied))}" if applied else "database is up to date")


async def _rotate(store: TenantStore) -> None:
    count = await store.rotate_keys()
    print(f"re-encrypted {count} secret(s) under the first key of MASTER_KEYS")


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "keys" and args.action == "generate":
        print(generate_key())
        return 0
    if args.command == "run":
        from supervisor.server import run_server

        return run_server()
    settings = settings_or_report()
    if settings is None:
        return 2
    configure_logging("WARNING", settings.effective_log_format)
    try:
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "keys":
            asyncio.run(_with_store(settings, _rotate))
        else:
            asyncio.run(_with_store(settings, lambda store: _tenants(args, settings, store)))
    except (InputError, TenantError, BootError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"error: database: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
