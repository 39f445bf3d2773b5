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
from shared.redact import REDACTOR
from shared.settings import Settings
from supervisor import __version__
from supervisor.alerts.cli import add_alerts_parser, run_alerts
from supervisor.audit_cli import add_audit_parser, run_audit
from supervisor.bootstrap import BootError, load_keys, resolve_dsn, settings_or_report
from supervisor.export_cli import add_export_parser, run_export
from supervisor.limit_options import add_limit_arguments, limit_changes, new_limits
from supervisor.operator_audit import OperatorAction, operator_actor, record_operator
from supervisor.profile_options import add_profile_arguments, print_profile_changes, profile_changes
from supervisor.promo_cli import add_promo_parser, run_promo
from supervisor.runtime_view import STATE_CHOICES, TenantRuntimeView, read_runtime
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
from tenant_runtime.config import BotMode, Language, TenantConfig


def _add_tenants_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add.add_argument("--referral-bonus-invited", type=int, default=0, help="minor units for the invited user")
    add.add_argument("--stars-packages", help="Stars top-up packages, e.g. 50,100,500 (default: STARS_PACKAGES)")
    add.add_argument("--stars-rate", help="minor units credited per Star (default: STARS_RATE_MINOR)")
    add.add_argument("--verify", action="store_true", help="call getMe before saving")
    add_limit_arguments(add)
    lst = tsub.add_parser("list", help="every tenant with its runtime state, as the running supervisors report it")
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--state", choices=STATE_CHOICES, help="only tenants in this state")
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
    upd.add_argument("--referral-bonus-invited", type=int)
    upd.add_argument("--stars-packages", help="e.g. 50,100,500, or 'default' for STARS_PACKAGES")
    upd.add_argument("--stars-rate", help="minor units per Star, or 'default' for STARS_RATE_MINOR")
    upd.add_argument("--bot-token", action="store_true", help="replace the bot token (BOT_TOKEN or prompt)")
    upd.add_argument("--kie-key", action="store_true", help="replace the KIE API key (KIE_API_KEY or prompt)")
    upd.add_argument("--kie-webhook-key", action="store_true", help="set KIE's webhook HMAC key (KIE_WEBHOOK_KEY)")
    upd.add_argument("--verify", action="store_true", help="call getMe with the new token before saving")
    add_limit_arguments(upd)
    add_profile_arguments(upd)
    for name in ("disable", "enable", "remove"):
        p = tsub.add_parser(name)
        p.add_argument("slug")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m supervisor", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="migrate, then serve every enabled tenant (the default for deploys)")
    sub.add_parser("migrate", help="apply pending SQL migrations")

    _add_tenants_parser(sub)
    add_promo_parser(sub)

    keys = sub.add_parser("keys", help="master key management")
    ksub = keys.add_subparsers(dest="action", required=True)
    ksub.add_parser("rotate", help="re-encrypt every secret under the first key of MASTER_KEYS")
    ksub.add_parser("generate", help="print a new random key for MASTER_KEYS")
    add_alerts_parser(sub)
    add_audit_parser(sub)
    add_export_parser(sub)
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


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _print_list(rows: list[tuple[TenantConfig, TenantRuntimeView]]) -> None:
    print(
        f"{'SLUG':<20} {'STATUS':<13} {'STATE':<13} {'SINCE':<12} {'HOLDER':<24} {'JOBS':>4}  "
        f"{'LAST UPDATE':<12} {'ADMINS':<20} {'NAME':<20} LAST ERROR"
    )
    for config, view in rows:
        admins = ",".join(str(a) for a in sorted(config.admin_ids)) or "-"
        error = (view.last_error or "-").replace("\n", " ")
        print(
            f"{config.slug:<20} {config.status:<13} {view.state:<13} {_ago(view.age_s(view.since)):<12} "
            f"{(view.lock_holder or '-')[:24]:<24} {view.open_jobs:>4}  {_ago(view.age_s(view.last_update_at)):<12} "
            f"{admins[:20]:<20} {config.display_name[:20]:<20} {error[:80]}"
        )


def _shown(info: dict[str, object], view: TenantRuntimeView) -> dict[str, object]:
    """The text form of `tenants show`: ages next to times, one line per reporting process."""
    shown = {k: v for k, v in info.items() if k not in ("instances", "state_age_s", "last_update_age_s")}
    shown["state_since"] = f"{info['state_since']} ({_ago(view.age_s(view.since))})" if view.since else None
    shown["last_update_at"] = (
        f"{info['last_update_at']} ({_ago(view.age_s(view.last_update_at))})" if view.last_update_at else None
    )
    for report in view.reports:
        line = f"{report.state.value} since {report.since.isoformat()} ({_ago(view.age_s(report.since))})"
        if report.troubled_since is not None and report.state.value != "active":
            line += f", in trouble for {_ago(view.age_s(report.troubled_since)).removesuffix(' ago')}"
        shown[f"instance {report.instance}"] = line
    return shown


async def _tenants(args: argparse.Namespace, settings: Settings, store: TenantStore) -> None:
    action = args.action
    # Every change is audited right after it is made (operator_audit; the change is not undone if
    # writing the record fails: the error says so).
    actor = operator_actor(settings.operator_name)
    if action == "add":
        await _tenant_add(args, settings, store, actor)
    elif action == "list":
        await _tenant_list(args, store)
    elif action == "show":
        await _tenant_show(args, store)
    elif action == "update":
        await _tenant_update(args, settings, store, actor)
    elif action in ("disable", "enable"):
        await _tenant_set_status(args, store, actor)
    elif action == "remove":
        await _tenant_remove(args, store, actor)


async def _tenant_add(args: argparse.Namespace, settings: Settings, store: TenantStore, actor: str) -> None:
    slug = parse_slug(args.slug)
    name = parse_display_name(args.name)
    admins = parse_admin_ids(args.admins)
    markup = parse_markup(args.markup)
    if min(args.welcome_bonus, args.referral_bonus, args.referral_bonus_invited) < 0:
        raise InputError("bonuses must be zero or positive")
    packages = parse_stars_packages(args.stars_packages) if args.stars_packages is not None else ()
    rate = parse_stars_rate(args.stars_rate) if args.stars_rate is not None else 0
    limits = new_limits(args)
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
            referral_bonus_invited=args.referral_bonus_invited,
            stars_packages=packages or None,
            stars_rate_minor=rate or None,
            limits=limits,
        )
    )
    await record_operator(store.pool, actor, OperatorAction.TENANT_ADD, config, None, describe(config))
    print(f"added tenant {config.slug} (lock key {config.lock_key}, webhook path /webhook/{config.slug})")


async def _tenant_list(args: argparse.Namespace, store: TenantStore) -> None:
    configs = await store.all()
    views = await read_runtime(store.pool)
    rows = [(c, views[c.id]) for c in configs if c.id in views and args.state in (None, views[c.id].state)]
    if args.json:
        print(json.dumps([describe(c) | v.as_dict() for c, v in rows], ensure_ascii=False, indent=2))
    elif not configs:
        print("no tenants yet: add one with `python -m supervisor tenants add <slug> --name ...`")
    elif not rows:
        print(f"no tenant is {args.state}")
    else:
        _print_list(rows)


async def _tenant_show(args: argparse.Namespace, store: TenantStore) -> None:
    config = await store.get(parse_slug(args.slug))
    view = (await read_runtime(store.pool, [config.id])).get(config.id)
    if view is None:  # removed between the two reads
        raise TenantError(f"no tenant {config.slug!r}")
    info = describe(config) | view.as_dict()
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
    else:
        _print_tenant(_shown(info, view))


async def _tenant_update(args: argparse.Namespace, settings: Settings, store: TenantStore, actor: str) -> None:
    slug = parse_slug(args.slug)
    if min(args.welcome_bonus or 0, args.referral_bonus or 0, args.referral_bonus_invited or 0) < 0:
        raise InputError("bonuses must be zero or positive")
    profile = profile_changes(args)  # files read and checked before any secret is asked for
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
        referral_bonus_invited=args.referral_bonus_invited,
        stars_packages=parse_stars_packages(args.stars_packages) if args.stars_packages is not None else None,
        stars_rate_minor=parse_stars_rate(args.stars_rate) if args.stars_rate is not None else None,
        **limit_changes(args),
        **profile,
    )
    before = describe(await store.get(slug))
    config = await store.update(slug, changes)
    await record_operator(store.pool, actor, OperatorAction.TENANT_UPDATE, config, before, describe(config))
    print(f"updated tenant {config.slug} (config version {config.config_version})")
    print_profile_changes(profile)


async def _tenant_set_status(args: argparse.Namespace, store: TenantStore, actor: str) -> None:
    before = describe(await store.get(parse_slug(args.slug)))
    config = await store.set_status(parse_slug(args.slug), "disabled" if args.action == "disable" else "enabled")
    what = OperatorAction.TENANT_DISABLE if args.action == "disable" else OperatorAction.TENANT_ENABLE
    await record_operator(store.pool, actor, what, config, before, describe(config))
    print(f"tenant {config.slug} is now {config.status}")


async def _tenant_remove(args: argparse.Namespace, store: TenantStore, actor: str) -> None:
    gone = await store.get(parse_slug(args.slug))
    await store.remove(gone.slug)
    await record_operator(store.pool, actor, OperatorAction.TENANT_REMOVE, gone, describe(gone), None)
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


async def _rotate(store: TenantStore, settings: Settings) -> None:
    count = await store.rotate_keys()
    after = {"secrets_reencrypted": count}
    await record_operator(
        store.pool, operator_actor(settings.operator_name), OperatorAction.KEYS_ROTATE, None, None, after
    )
    print(f"re-encrypted {count} secret(s) under the first key of MASTER_KEYS")


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "keys" and args.action == "generate":
        print(generate_key())
        return 0
    if args.command == "run":
        from supervisor.server import run_server

        return run_server()
    settings = settings_or_report(announce=False)  # `run` announces; a CLI command is not a deploy
    if settings is None:
        return 2
    configure_logging("WARNING", settings.effective_log_format)
    if args.command == "alerts":
        return asyncio.run(run_alerts(args, settings))
    try:
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "keys":
            asyncio.run(_with_store(settings, lambda store: _rotate(store, settings)))
        elif args.command == "audit":
            asyncio.run(_with_store(settings, lambda store: run_audit(args, store.pool)))
        elif args.command == "export":
            asyncio.run(_with_store(settings, lambda store: run_export(args, store)))
        elif args.command == "promo":
            asyncio.run(_with_store(settings, lambda store: run_promo(args, settings, store)))
        else:
            asyncio.run(_with_store(settings, lambda store: _tenants(args, settings, store)))
    except (InputError, TenantError, BootError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # InterfaceError covers a DATABASE_URL asyncpg cannot use (ClientConfigurationError).
        print(REDACTOR.redact(f"error: database: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return 1
    return 0
