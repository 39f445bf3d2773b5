"""`tenants add|update --free-daily --max-open-jobs --rate-limit --timezone` through the real CLI process."""

from __future__ import annotations

import json
import secrets

import asyncpg
import pytest

from shared.crypto import generate_key
from tests import own_database
from tests.helpers import cli_env, run_cli

KEY = generate_key()


database_url = own_database.database_url
pool = own_database.pool


def _token(bot_id: int) -> str:
    return f"{bot_id}:" + secrets.token_urlsafe(40)[:35].replace("-", "x")


def _env(database_url: str, bot_id: int) -> dict[str, str]:
    return cli_env(database_url, KEY, BOT_TOKEN=_token(bot_id), KIE_API_KEY="kie_" + secrets.token_hex(16))


async def test_limits_have_safe_defaults_and_are_set_and_shown(database_url: str) -> None:
    env = _env(database_url, 700_170_001)
    added = await run_cli(["tenants", "add", "lim-default", "--name", "Limits"], env)
    assert added.code == 0, added.text
    info = json.loads((await run_cli(["tenants", "show", "lim-default", "--json"], env)).out)
    assert (info["free_daily"], info["max_open_jobs"], info["rate_limit"], info["timezone"]) == (
        5,
        3,
        "30/min",
        "Europe/Moscow",
    )
    options = ["--free-daily", "0", "--max-open-jobs", "7", "--rate-limit", "12/min", "--timezone", "Asia/Tokyo"]
    updated = await run_cli(["tenants", "update", "lim-default", *options], env)
    assert updated.code == 0, updated.text
    info = json.loads((await run_cli(["tenants", "show", "lim-default", "--json"], env)).out)
    assert (info["free_daily"], info["max_open_jobs"], info["rate_limit"], info["timezone"]) == (
        0,
        7,
        "12/min",
        "Asia/Tokyo",
    )
    env2 = _env(database_url, 700_170_002)
    added = await run_cli(
        ["tenants", "add", "lim-set", "--name", "Set", "--rate-limit", "45", "--free-daily", "9"], env2
    )
    assert added.code == 0, added.text
    info = json.loads((await run_cli(["tenants", "show", "lim-set", "--json"], env2)).out)
    assert (info["free_daily"], info["rate_limit"]) == (9, "45/min")


BAD = [
    (["--free-daily", "-1"], "--free-daily '-1' must be a whole number from 0 to 1000"),
    (["--free-daily", "five"], "--free-daily 'five' must be a whole number"),
    (["--max-open-jobs", "0"], "--max-open-jobs '0' must be a whole number from 1 to 100"),
    (["--max-open-jobs", "-2"], "--max-open-jobs '-2' must be a whole number"),
    (["--rate-limit", "0/min"], "--rate-limit '0/min' must look like 30/min"),
    (["--rate-limit", "lots"], "--rate-limit 'lots' must look like 30/min"),
    (["--rate-limit", "30/hour"], "--rate-limit '30/hour' must look like 30/min"),
    (["--timezone", "Mars/Olympus_Mons"], "unknown time zone 'Mars/Olympus_Mons'"),
    (["--timezone", "Europe/Moscow;"], "--timezone 'Europe/Moscow;' is not a time zone name"),
]


@pytest.mark.parametrize(("options", "message"), BAD)
async def test_a_bad_limit_on_add_is_one_clear_line_and_nothing_is_written(
    database_url: str, pool: asyncpg.Pool, options: list[str], message: str
) -> None:
    slug = f"lim-bad-{secrets.token_hex(3)}"
    result = await run_cli(["tenants", "add", slug, "--name", "Bad", *options], _env(database_url, 700_170_100))
    assert result.code == 1
    assert result.err.strip() == f"error: {message}" or message in result.err, result.text
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert await pool.fetchval("SELECT count(*) FROM tenants WHERE slug = $1", slug) == 0


async def test_a_bad_limit_on_update_changes_nothing(database_url: str, pool: asyncpg.Pool) -> None:
    env = _env(database_url, 700_170_200)
    assert (await run_cli(["tenants", "add", "lim-upd", "--name", "Upd"], env)).code == 0
    before = await pool.fetchrow("SELECT * FROM tenants WHERE slug = 'lim-upd'")
    for options, message in BAD:
        # A good option beside the bad one must not be written either.
        result = await run_cli(["tenants", "update", "lim-upd", "--markup", "3", *options], env)
        assert result.code == 1 and message in result.err, result.text
    after = await pool.fetchrow("SELECT * FROM tenants WHERE slug = 'lim-upd'")
    assert dict(after) == dict(before)
