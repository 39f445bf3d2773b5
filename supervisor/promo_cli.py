"""`python -m supervisor promo add|list|disable`: the operator's promo codes for a tenant.

    promo add SLUG CODE (--amount 100.00 | --free-generations 5) --max-uses 50 [--expires 2027-01-31]
    promo list SLUG [--json]
    promo disable SLUG CODE

Every part is checked before anything is written (`tenant_runtime.promo.codes`); a bad one is one line
naming it, exit 1, nothing written. Creations and disables are in the tenant's audit log as the operator.
"""

from __future__ import annotations

import argparse
import getpass
import json
import re

from shared.settings import Settings
from supervisor.tenants import TenantStore
from supervisor.validation import InputError, parse_slug
from tenant_runtime.billing.pricing import format_money
from tenant_runtime.promo import store
from tenant_runtime.promo.codes import (
    PromoField,
    PromoInputError,
    PromoSpec,
    parse_amount,
    parse_code,
    parse_expiry,
    parse_free_generations,
    parse_max_uses,
)

__all__ = ["add_promo_parser", "run_promo"]


def add_promo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    promo = sub.add_parser("promo", help="promo codes of a tenant: add, list, disable")
    psub = promo.add_subparsers(dest="action", required=True)
    add = psub.add_parser("add", help="a code worth an amount or free generations, once per user")
    add.add_argument("slug")
    add.add_argument("code", help="3-32 letters, digits, '_' or '-' (case does not matter)")
    add.add_argument("--amount", help="credited to the balance, in the currency's major units, e.g. 100.00")
    add.add_argument("--free-generations", help="free generations granted instead of money, e.g. 5")
    add.add_argument("--max-uses", required=True, help="redemptions in all, e.g. 50")
    add.add_argument("--expires", help="last valid day, YYYY-MM-DD, in the tenant's time zone (default: never)")
    lst = psub.add_parser("list")
    lst.add_argument("slug")
    lst.add_argument("--json", action="store_true")
    off = psub.add_parser("disable")
    off.add_argument("slug")
    off.add_argument("code")


_MESSAGES: dict[PromoField, str] = {
    PromoField.CODE: "promo code {value!r} must be 3-32 letters, digits, '_' or '-', without spaces",
    PromoField.AMOUNT: "--amount {value!r} must be a number above 0, at most 1000000, with at most two decimals",
    PromoField.FREE_GENERATIONS: "--free-generations {value!r} must be a whole number from 1 to 1000",
    PromoField.VALUE: "give exactly one of --amount and --free-generations",
    PromoField.MAX_USES: "--max-uses {value!r} must be a whole number from 1 to 1000000",
    PromoField.EXPIRES: "--expires {value!r} must be a date written YYYY-MM-DD",
    PromoField.EXPIRED: "--expires {value} has already passed in the tenant's time zone",
    PromoField.EXISTS: "promo code {value} already exists for this tenant",
    PromoField.FORMAT: "{value!r} is not a promo code line",
}


def _input_error(exc: PromoInputError) -> InputError:
    return InputError(_MESSAGES[exc.field].format(value=exc.value))


def _operator() -> str:
    """The audit log's actor for the shell user running the CLI."""
    try:
        name = re.sub(r"\s+", "_", getpass.getuser())[:64]
    except (KeyError, OSError):
        name = ""
    return f"operator:{name or 'cli'}"


def _spec(args: argparse.Namespace) -> PromoSpec:
    if (args.amount is None) == (args.free_generations is None):
        raise PromoInputError(PromoField.VALUE, "")
    return PromoSpec(
        code=parse_code(args.code),
        amount_minor=parse_amount(args.amount) if args.amount is not None else None,
        free_generations=parse_free_generations(args.free_generations) if args.free_generations is not None else None,
        max_uses=parse_max_uses(args.max_uses),
        expires_on=parse_expiry(args.expires) if args.expires is not None else None,
    )


async def run_promo(args: argparse.Namespace, settings: Settings, tenants: TenantStore) -> None:
    slug = parse_slug(args.slug)
    try:
        spec = _spec(args) if args.action == "add" else None
        config = await tenants.get(slug)
        if spec is not None:
            await store.create(tenants.pool, config.id, config.limits.timezone, spec, _operator())
            print(
                f"added promo code {spec.code} to {slug}: {_value(settings, spec.amount_minor, spec.free_generations)}"
            )
        elif args.action == "list":
            _print(settings, await store.codes(tenants.pool, config.id, config.limits.timezone), as_json=args.json)
        else:
            code = parse_code(args.code)
            if not await store.disable(tenants.pool, config.id, code, _operator()):
                raise InputError(f"no enabled promo code {code} for {slug}")
            print(f"disabled promo code {code} of {slug}")
    except PromoInputError as exc:
        raise _input_error(exc) from None


def _value(settings: Settings, amount_minor: int | None, generations: int | None) -> str:
    if amount_minor is not None:
        return format_money(amount_minor, settings.currency_code, "en")
    return f"{generations} free generations"


def _print(settings: Settings, found: list[store.PromoCode], *, as_json: bool) -> None:
    rows = [
        {
            "code": p.code,
            "amount_minor": p.amount_minor,
            "free_generations": p.free_generations,
            "uses": p.uses,
            "max_uses": p.max_uses,
            "valid_through": p.valid_through.isoformat() if p.valid_through else None,
            "disabled": p.disabled_at is not None,
            "active": p.active,
            "created_by": p.created_by,
        }
        for p in found
    ]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        print("no promo codes yet")
        return
    print(f"{'CODE':<32} {'VALUE':<22} {'USES':>15}  {'VALID THROUGH':<13} {'STATE':<9} CREATED BY")
    for p in found:
        state = "disabled" if p.disabled_at else "expired" if p.expired else "used up" if not p.active else "active"
        print(
            f"{p.code:<32} {_value(settings, p.amount_minor, p.free_generations):<22} "
            f"{f'{p.uses}/{p.max_uses}':>15}  {p.valid_through.isoformat() if p.valid_through else 'never':<13} "
            f"{state:<9} {p.created_by}"
        )
