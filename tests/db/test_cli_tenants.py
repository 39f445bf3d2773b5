"""Operator CLI against real Postgres, through the real `python -m supervisor` process."""

from __future__ import annotations

import json
import re
import secrets

import asyncpg
import pytest

from shared.crypto import CryptoError, KeyRing, generate_key
from supervisor.tenants import TenantStore
from tests.helpers import assert_no_secrets, cli_env, make_token, run_cli

KEY = generate_key()


def _token(bot_id: int) -> str:
    return f"{bot_id}:" + secrets.token_urlsafe(40)[:35].replace("-", "x")


@pytest.fixture
def kie_key() -> str:
    return "kie_" + secrets.token_hex(16)


async def test_add_list_show_update_disable_enable_remove(database_url: str, kie_key: str) -> None:
    token = _token(700000001)
    env = cli_env(database_url, KEY, BOT_TOKEN=token, KIE_API_KEY=kie_key)
    seen: list[str] = []

    added = await run_cli(["tenants", "add", "cli-shop", "--name", "CLI Shop", "--admins", "111, 222,333"], env)
    seen.append(added.text)
    assert added.code == 0, added.text
    assert "added tenant cli-shop" in added.out

    shown = await run_cli(["tenants", "show", "cli-shop", "--json"], env)
    seen.append(shown.text)
    info = json.loads(shown.out)
    assert info["admin_ids"] == [111, 222, 333]
    assert info["bot_token"] == f"{token[:4]}…{token[-4:]}"
    assert info["status"] == "enabled"
    assert isinstance(info["lock_key"], int)
    version = info["config_version"]

    listed = await run_cli(["tenants", "list"], env)
    seen.append(listed.text)
    assert "cli-shop" in listed.out and "111,222,333" in listed.out

    updated = await run_cli(["tenants", "update", "cli-shop", "--markup", "3", "--language", "en"], env)
    seen.append(updated.text)
    assert updated.code == 0, updated.text
    info2 = json.loads((await run_cli(["tenants", "show", "cli-shop", "--json"], env)).out)
    assert info2["markup"] == "3.000" and info2["default_language"] == "en"
    assert info2["config_version"] == version + 1
    assert info2["lock_key"] == info["lock_key"], "the lock key is stable for the tenant's life"
    assert info2["stars_packages"] is None and info2["stars_rate_minor"] is None, "platform defaults"

    stars = await run_cli(["tenants", "update", "cli-shop", "--stars-packages", "100, 25", "--stars-rate", "120"], env)
    assert stars.code == 0, stars.text
    info3 = json.loads((await run_cli(["tenants", "show", "cli-shop", "--json"], env)).out)
    assert info3["stars_packages"] == [25, 100] and info3["stars_rate_minor"] == 120
    reset = await run_cli(
        ["tenants", "update", "cli-shop", "--stars-packages", "default", "--stars-rate", "default"], env
    )
    assert reset.code == 0, reset.text
    info4 = json.loads((await run_cli(["tenants", "show", "cli-shop", "--json"], env)).out)
    assert info4["stars_packages"] is None and info4["stars_rate_minor"] is None

    new_token = _token(700000001)
    rotated = await run_cli(["tenants", "update", "cli-shop", "--bot-token"], {**env, "BOT_TOKEN": new_token})
    seen.append(rotated.text)
    assert rotated.code == 0, rotated.text

    for action, status in (("disable", "disabled"), ("enable", "enabled")):
        result = await run_cli(["tenants", action, "cli-shop"], env)
        seen.append(result.text)
        assert f"is now {status}" in result.out

    listed_json = await run_cli(["tenants", "list", "--json"], env)
    seen.append(listed_json.text)
    assert [t["slug"] for t in json.loads(listed_json.out)] == ["cli-shop"]

    removed = await run_cli(["tenants", "remove", "cli-shop"], env)
    seen.append(removed.text)
    assert removed.code == 0
    assert (await run_cli(["tenants", "show", "cli-shop"], env)).code == 1
    assert_no_secrets("\n".join(seen), [token, new_token, kie_key, KEY])


@pytest.mark.parametrize(
    ("args", "env_extra", "message"),
    [
        (["tenants", "add", "Bad_Slug", "--name", "x"], {}, "slug 'Bad_Slug'"),
        (["tenants", "add", "ok-slug", "--name", "x", "--admins", "111,abc"], {}, "admin id 'abc'"),
        (["tenants", "add", "ok-slug", "--name", "x", "--admins", "111,,222"], {}, "admin id ''"),
        (["tenants", "add", "ok-slug", "--name", "x", "--admins", "-5"], {}, "admin id '-5'"),
        (["tenants", "add", "ok-slug", "--name", "x"], {"BOT_TOKEN": "12345:short"}, "wrong shape"),
        (["tenants", "add", "ok-slug", "--name", "x"], {"BOT_TOKEN": ""}, "BOT_TOKEN is not set"),
        (["tenants", "add", "ok-slug", "--name", "x", "--markup", "abc"], {}, "markup 'abc'"),
        (["tenants", "show", "no-such"], {}, "no tenant 'no-such'"),
        (["tenants", "disable", "no-such"], {}, "no tenant 'no-such'"),
        (["tenants", "remove", "no-such"], {}, "no tenant 'no-such'"),
        (["tenants", "update", "no-such", "--markup", "2"], {}, "no tenant 'no-such'"),
        (["tenants", "add", "ok-slug", "--name", "x", "--stars-packages", "50,abc"], {}, "stars packages '50,abc'"),
        (["tenants", "add", "ok-slug", "--name", "x", "--stars-packages", "0"], {}, "from 1 to 10000"),
        (["tenants", "add", "ok-slug", "--name", "x", "--stars-packages", "20000"], {}, "from 1 to 10000"),
        (["tenants", "add", "ok-slug", "--name", "x", "--stars-packages", "1,2,3,4,5,6,7,8,9"], {}, "at most 8"),
        (["tenants", "add", "ok-slug", "--name", "x", "--stars-rate", "0"], {}, "stars rate '0'"),
        (["tenants", "add", "ok-slug", "--name", "x", "--stars-rate", "1.5"], {}, "stars rate '1.5'"),
        (["tenants", "add", "ok-slug", "--name", "x", "--welcome-bonus", "-1"], {}, "zero or positive"),
        (["tenants", "update", "no-such", "--stars-rate", "abc"], {}, "stars rate 'abc'"),
        (["tenants", "update", "no-such", "--referral-bonus", "-1"], {}, "zero or positive"),
        # Issue 15: a slug starting with "-" could be added, then not addressed by any command.
        (["tenants", "add", "--name", "x", "--", "-shop"], {}, "slug '-shop'"),
        (["tenants", "add", "ok-slug\n", "--name", "x"], {}, "slug 'ok-slug\\n'"),
        # Unicode digits passed str.isdigit() and then failed in int(): a traceback.
        (["tenants", "add", "ok-slug", "--name", "x", "--admins", "111,²"], {}, "admin id '²'"),
        (["tenants", "add", "ok-slug", "--name", "x", "--stars-rate", "²"], {}, "stars rate '²'"),
        (["tenants", "add", "ok-slug", "--name", "x", "--stars-packages", "50,²"], {}, "stars packages '50,²'"),
    ],
)
async def test_bad_input_is_one_clear_line_and_writes_nothing(
    database_url: str, pool: asyncpg.Pool, kie_key: str, args: list[str], env_extra: dict[str, str], message: str
) -> None:
    env = cli_env(database_url, KEY, BOT_TOKEN=_token(700000002), KIE_API_KEY=kie_key)
    env.update(env_extra)
    before = await pool.fetchval("SELECT count(*) FROM tenants")
    result = await run_cli(args, env)
    assert result.code != 0
    assert message in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "Traceback" not in result.text
    assert await pool.fetchval("SELECT count(*) FROM tenants") == before
    assert_no_secrets(result.text, [env.get("BOT_TOKEN"), kie_key, KEY])


async def test_duplicate_slug_and_token_rejected(database_url: str, pool: asyncpg.Pool, kie_key: str) -> None:
    token = _token(700000003)
    env = cli_env(database_url, KEY, BOT_TOKEN=token, KIE_API_KEY=kie_key)
    assert (await run_cli(["tenants", "add", "dup-shop", "--name", "A"], env)).code == 0
    again = await run_cli(["tenants", "add", "dup-shop", "--name", "B"], {**env, "BOT_TOKEN": _token(700000004)})
    assert again.code == 1 and "already exists" in again.err
    same_token = await run_cli(["tenants", "add", "dup-shop-2", "--name", "B"], env)
    assert same_token.code == 1 and "already used" in same_token.err
    assert await pool.fetchval("SELECT count(*) FROM tenants WHERE slug LIKE 'dup-shop%'") == 1
    assert_no_secrets(again.text + same_token.text, [token, kie_key])


async def test_invalid_settings_fail_with_one_line_each(database_url: str) -> None:
    env = cli_env(database_url, "not-a-key!!", PORT="abc", LOG_FORMAT="xml")
    result = await run_cli(["tenants", "list"], env)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert any("PORT" in line for line in lines) and any("LOG_FORMAT" in line for line in lines)
    assert "Traceback" not in result.err
    bad_key = await run_cli(["tenants", "list"], cli_env(database_url, "c2hvcnQ"))
    assert bad_key.code == 1 and "32 bytes" in bad_key.err


async def test_ciphertext_swapped_between_rows_does_not_decrypt(pool: asyncpg.Pool) -> None:
    keys = KeyRing([KEY])
    store = TenantStore(pool, keys)
    from supervisor.tenants import NewTenant

    a = await store.add(NewTenant("swap-a", "A", make_token(710000001, "a"), 710000001, "kie_key_aaaaaaaaaaaa", []))
    b = await store.add(NewTenant("swap-b", "B", make_token(710000002, "b"), 710000002, "kie_key_bbbbbbbbbbbb", []))
    a_token = await pool.fetchval("SELECT bot_token_enc FROM tenants WHERE id = $1", a.id)
    await pool.execute("UPDATE tenants SET bot_token_enc = $1 WHERE id = $2", a_token, b.id)
    with pytest.raises(CryptoError):
        keys.decrypt(a_token, scope=f"tenant:{b.id}", column="bot_token")
    # The same ciphertext under another column of the same row fails too.
    with pytest.raises(CryptoError):
        keys.decrypt(a_token, scope=f"tenant:{a.id}", column="kie_api_key")
    assert keys.decrypt(a_token, scope=f"tenant:{a.id}", column="bot_token") == make_token(710000001, "a")
    # The registry skips the broken row instead of failing every tenant.
    slugs = [c.slug for c in await store.all()]
    assert "swap-a" in slugs and "swap-b" not in slugs
    await pool.execute("DELETE FROM tenants WHERE slug IN ('swap-a', 'swap-b')")


async def test_key_rotation_keeps_every_secret_readable(database_url: str, pool: asyncpg.Pool, kie_key: str) -> None:
    old, new = KEY, generate_key()
    token = _token(700000005)
    env = cli_env(database_url, old, BOT_TOKEN=token, KIE_API_KEY=kie_key)
    assert (await run_cli(["tenants", "add", "rot-shop", "--name", "R"], env)).code == 0
    rotated = await run_cli(["keys", "rotate"], {**env, "MASTER_KEYS": f"{new},{old}"})
    assert rotated.code == 0, rotated.text
    assert "re-encrypted" in rotated.out
    only_new = KeyRing([new])
    config = await TenantStore(pool, only_new).get("rot-shop")
    assert config.bot_token == token and config.kie_api_key == kie_key
    # Old key alone no longer opens the rotated secrets.
    with pytest.raises(Exception, match="not in MASTER_KEYS"):
        await TenantStore(pool, KeyRing([old])).get("rot-shop")
    assert_no_secrets(rotated.text, [token, kie_key, old, new])
    await pool.execute("DELETE FROM tenants WHERE slug = 'rot-shop'")


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("postgres://u:pw-Secret-1@localhost:notaport/db", 2, "invalid setting DATABASE_URL: is not a URL"),
        ("not a url pw-Secret-1", 2, "invalid setting DATABASE_URL: must be a URL"),
        ("postgresql://u:pw-Secret-1@[::1/db", 2, "invalid setting DATABASE_URL: is not a URL"),
        ("mysql://u:pw-Secret-1@h/d", 2, "invalid setting DATABASE_URL: must be a URL"),
        # The shape is right but asyncpg refuses an option: caught where the connection is made.
        ("postgresql://u:pw-Secret-1@127.0.0.1/db?sslmode=bogus", 1, "error: database: ClientConfigurationError"),
    ],
)
async def test_a_malformed_database_url_is_one_clear_line(url: str, code: int, message: str) -> None:
    result = await run_cli(["tenants", "list"], cli_env(url, KEY))
    assert result.code == code, result.text
    assert message in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert "Traceback" not in result.text and "pw-Secret-1" not in result.text


async def test_show_prints_the_runtime_state_and_last_error(database_url: str, pool: asyncpg.Pool) -> None:
    store = TenantStore(pool, KeyRing([KEY]))
    from supervisor.tenants import NewTenant

    config = await store.add(NewTenant("show-rt", "Show", make_token(720000001, "s"), 720000001, None, []))
    env = cli_env(database_url, KEY)
    try:
        shown = await run_cli(["tenants", "show", "show-rt"], env)
        assert shown.code == 0, shown.text
        assert "not running (no supervisor holds its lock)" in shown.out

        await store.mark_token_invalid(config.id, "Telegram rejected the token: Unauthorized")
        identity = f"sup-a.{secrets.token_hex(3)}"
        await pool.execute(
            "INSERT INTO instances (name, host, pid, version) VALUES ($1, 'host-a', 4242, 'test')", identity
        )
        await pool.execute("INSERT INTO lock_holders (tenant_id, instance) VALUES ($1, $2)", config.id, identity)
        info = json.loads((await run_cli(["tenants", "show", "show-rt", "--json"], env)).out)
        assert info["status"] == "token_invalid"
        assert info["last_error"] == "Telegram rejected the token: Unauthorized"
        assert info["lock_holder"] == identity and 0 <= info["lock_heartbeat_age_s"] < 30
        assert info["runtime"].startswith(f"running: lock held by {identity} on host-a (pid 4242)")

        await pool.execute(
            "UPDATE lock_holders SET heartbeat_at = now() - interval '5 minutes' WHERE tenant_id = $1", config.id
        )
        shown = await run_cli(["tenants", "show", "show-rt"], env)
        assert "probably not running: lock held by" in shown.out
        assert re.search(r"last heartbeat 3[01]\d s ago", shown.out), shown.out  # the CLI takes seconds to start
        assert "last_error" in shown.out and "Telegram rejected the token" in shown.out
    finally:
        await pool.execute("DELETE FROM tenants WHERE id = $1", config.id)
        await pool.execute("DELETE FROM instances WHERE name LIKE 'sup-a.%'")
