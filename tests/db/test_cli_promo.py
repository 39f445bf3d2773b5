"""`python -m supervisor promo add|list|disable` through the real CLI process (issue 17, item 3)."""

from __future__ import annotations

import json
import secrets

import asyncpg
import pytest

from shared.crypto import generate_key
from tests import own_database
from tests.helpers import cli_env, run_cli

KEY = generate_key()
SLUG = "promo-cli"


database_url = own_database.database_url
pool = own_database.pool


@pytest.fixture(scope="module")
async def env(database_url: str) -> dict[str, str]:
    token = "700180001:" + secrets.token_urlsafe(40)[:35].replace("-", "x")
    environment = cli_env(database_url, KEY, BOT_TOKEN=token, KIE_API_KEY="kie_" + secrets.token_hex(16))
    added = await run_cli(["tenants", "add", SLUG, "--name", "Promo"], environment)
    assert added.code == 0, added.text
    return environment


async def _codes(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM promo_codes"))


async def test_add_list_disable(env: dict[str, str], pool: asyncpg.Pool) -> None:
    added = await run_cli(
        ["promo", "add", SLUG, "spring", "--amount", "100.00", "--max-uses", "50", "--expires", "2099-01-31"], env
    )
    assert added.code == 0, added.text
    assert "added promo code SPRING to promo-cli: ₽100" in added.out
    free = await run_cli(["promo", "add", SLUG, "FREE5", "--free-generations", "5", "--max-uses", "20"], env)
    assert free.code == 0, free.text
    listed = json.loads((await run_cli(["promo", "list", SLUG, "--json"], env)).out)
    by_code = {row["code"]: row for row in listed}
    assert by_code["SPRING"] | {"created_by": ""} == {
        "code": "SPRING",
        "amount_minor": 10_000,
        "free_generations": None,
        "uses": 0,
        "max_uses": 50,
        "valid_through": "2099-01-31",
        "disabled": False,
        "active": True,
        "created_by": "",
    }
    assert by_code["SPRING"]["created_by"].startswith("operator:")
    assert by_code["FREE5"]["free_generations"] == 5 and by_code["FREE5"]["valid_through"] is None
    table = await run_cli(["promo", "list", SLUG], env)
    assert "SPRING" in table.out and "0/50" in table.out and "2099-01-31" in table.out
    off = await run_cli(["promo", "disable", SLUG, "spring"], env)
    assert off.code == 0 and "disabled promo code SPRING" in off.out, off.text
    again = await run_cli(["promo", "disable", SLUG, "spring"], env)
    assert again.code == 1 and "no enabled promo code SPRING" in again.err


BAD = [
    (["with space", "--amount", "10", "--max-uses", "5"], "promo code 'with space' must be 3-32 letters"),
    (["GIFT🎁", "--amount", "10", "--max-uses", "5"], "promo code 'GIFT🎁' must be 3-32 letters"),
    (["X" * 200, "--amount", "10", "--max-uses", "5"], "must be 3-32 letters, digits"),
    (["DUP", "--amount", "10", "--max-uses", "5"], "promo code DUP already exists for this tenant"),
    (
        ["OLD", "--amount", "10", "--max-uses", "5", "--expires", "2020-01-01"],
        "--expires 2020-01-01 has already passed",
    ),
    (
        ["BADDATE", "--amount", "10", "--max-uses", "5", "--expires", "31.01.2027"],
        "--expires '31.01.2027' must be a date",
    ),
    (["NONE", "--max-uses", "5"], "give exactly one of --amount and --free-generations"),
    (["BOTH", "--amount", "1", "--free-generations", "1", "--max-uses", "5"], "give exactly one of --amount"),
    (["ZERO", "--amount", "0", "--max-uses", "5"], "--amount '0' must be a number above 0"),
    (["NEG", "--amount", "-5", "--max-uses", "5"], "--amount '-5' must be a number above 0"),
    (["MANY", "--amount", "1", "--max-uses", "0"], "--max-uses '0' must be a whole number from 1"),
    (["WORDS", "--free-generations", "lots", "--max-uses", "5"], "--free-generations 'lots' must be a whole number"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
async def test_bad_promo_input_is_one_clear_line_and_nothing_is_written(
    env: dict[str, str], pool: asyncpg.Pool, args: list[str], message: str
) -> None:
    if args[0] == "DUP" and not await pool.fetchval("SELECT 1 FROM promo_codes WHERE code = 'DUP'"):
        assert (await run_cli(["promo", "add", SLUG, "DUP", "--amount", "99", "--max-uses", "1"], env)).code == 0
    before = await pool.fetch("SELECT * FROM promo_codes ORDER BY code")
    result = await run_cli(["promo", "add", SLUG, *args], env)
    assert result.code == 1, result.text
    assert message in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert [dict(r) for r in await pool.fetch("SELECT * FROM promo_codes ORDER BY code")] == [dict(r) for r in before]


async def test_an_unknown_tenant_is_an_error(env: dict[str, str], pool: asyncpg.Pool) -> None:
    before = await _codes(pool)
    result = await run_cli(["promo", "add", "no-such-shop", "CODE", "--amount", "1", "--max-uses", "1"], env)
    assert result.code == 1 and "no tenant 'no-such-shop'" in result.err
    assert await _codes(pool) == before
