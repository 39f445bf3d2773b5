"""The audit: every operator change through the real CLI is recorded (who, what, when, before/after with
secrets masked), tenant admins' actions and money actions show in the same timeline, a removed
tenant's history stays, `--since` filters, bad input is one line and writes nothing, and the record
cannot be rewritten."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.crypto import generate_key
from supervisor.audit_cli import parse_since
from supervisor.validation import InputError
from tenant_runtime.billing.ledger import Ledger
from tests.helpers import assert_no_secrets, cli_env, make_token, run_cli

KEY = generate_key()


@pytest.fixture
async def env(module_database: str, module_pool: asyncpg.Pool) -> AsyncIterator[dict[str, str]]:
    # TRUNCATE, unlike DELETE, passes the append-only trigger: each test starts from an empty record.
    await module_pool.execute("TRUNCATE tenants, operator_audit CASCADE")
    yield cli_env(module_database, KEY, OPERATOR_NAME="alice@ops")
    await module_pool.execute("TRUNCATE tenants, operator_audit CASCADE")


def _token(bot_id: int, seed: str = "t") -> str:
    return make_token(bot_id, seed + secrets.token_hex(4))


async def test_every_operator_change_is_audited_with_secrets_masked(
    env: dict[str, str], module_pool: asyncpg.Pool
) -> None:
    token, new_token, kie_key = _token(730000001, "a"), _token(730000001, "b"), "kie_" + secrets.token_hex(16)
    seen = []
    for args, extra in [
        (["tenants", "add", "audit-shop", "--name", "Audit Shop", "--admins", "111"], {"BOT_TOKEN": token}),
        (["tenants", "update", "audit-shop", "--markup", "3", "--language", "en"], {}),
        (["tenants", "update", "audit-shop", "--bot-token"], {"BOT_TOKEN": new_token}),
        (["tenants", "disable", "audit-shop"], {}),
        (["tenants", "enable", "audit-shop"], {}),
        (["keys", "rotate"], {}),
    ]:
        result = await run_cli(args, {**env, "KIE_API_KEY": kie_key, **extra})
        assert result.code == 0, result.text
        seen.append(result.text)

    listed = await run_cli(["audit", "audit-shop", "--json"], env)
    assert listed.code == 0, listed.text
    records = json.loads(listed.out)
    assert [r["action"] for r in records] == [
        "tenant_add",
        "tenant_update",
        "tenant_update",
        "tenant_disable",
        "tenant_enable",
    ]
    assert {r["actor"] for r in records} == {"operator:alice@ops"}
    added, markup, rotated, disabled, _ = records
    assert added["before"] is None and added["after"]["slug"] == "audit-shop"
    assert markup["before"] == {"markup": "2.000", "default_language": "ru"}
    assert markup["after"] == {"markup": "3.000", "default_language": "en"}
    assert (
        set(rotated["after"]) == {"bot_token"} and rotated["after"]["bot_token"] == f"{new_token[:4]}…{new_token[-4:]}"
    )
    assert disabled["before"] == {"status": "enabled"} and disabled["after"] == {"status": "disabled"}

    everything = await run_cli(["audit"], env)
    assert "keys_rotate" in everything.out and "secrets_reencrypted: - → " in everything.out
    text = await run_cli(["audit", "audit-shop"], env)
    assert "markup: 2.000 → 3.000" in text.out and "status: enabled → disabled" in text.out
    assert "tenant_add  created" in text.out

    removed = await run_cli(["tenants", "remove", "audit-shop"], env)
    assert removed.code == 0, removed.text
    after_removal = json.loads((await run_cli(["audit", "audit-shop", "--json"], env)).out)
    assert [r["action"] for r in after_removal][-1] == "tenant_remove", "a removed tenant's history stays"
    assert after_removal[-1]["before"]["slug"] == "audit-shop" and after_removal[-1]["after"] is None
    seen += [listed.text, everything.text, text.text, json.dumps(after_removal)]
    rows = await module_pool.fetch("SELECT before::text, after::text FROM operator_audit")
    seen += [f"{r['before']} {r['after']}" for r in rows]
    assert_no_secrets("\n".join(seen), [token, new_token, kie_key, KEY])


async def test_tenant_admins_actions_and_money_are_in_the_same_timeline(
    env: dict[str, str], module_pool: asyncpg.Pool
) -> None:
    token = _token(730000002)
    added = await run_cli(
        ["tenants", "add", "money-shop", "--name", "M", "--admins", "111"],
        {**env, "BOT_TOKEN": token, "KIE_API_KEY": "kie_" + "m" * 24},
    )
    assert added.code == 0, added.text
    tid = await module_pool.fetchval("SELECT id FROM tenants WHERE slug = 'money-shop'")
    ledger = Ledger(module_pool)
    await module_pool.execute("INSERT INTO accounts (tenant_id, user_id) VALUES ($1, 42)", tid)
    await ledger.credit(tid, 42, 500, kind="admin_credit", unique_key="a1", actor="admin:111", reason="gift")
    await ledger.debit(tid, 42, 200, unique_key="a2", actor="admin:111", reason="mistake")
    await ledger.credit(tid, 42, 50, kind="bonus_welcome", unique_key="w", actor="system")  # nobody's hand
    await module_pool.execute(
        "INSERT INTO audit_log (tenant_id, actor, action, subject, detail) VALUES ($1, 'admin:111', 'ban', '42', 'spam')",
        tid,
    )
    records = json.loads((await run_cli(["audit", "money-shop", "--json"], env)).out)
    assert [(r["action"], r["actor"]) for r in records] == [
        ("tenant_add", "operator:alice@ops"),
        ("balance_credit", "admin:111"),
        ("balance_debit", "admin:111"),
        ("ban", "admin:111"),
    ]
    credit, debit = records[1], records[2]
    assert credit["subject"] == "user:42" and credit["detail"] == "gift"
    assert credit["before"] == {"available": 0} and credit["after"] == {"available": 500}
    assert debit["before"] == {"available": 500} and debit["after"] == {"available": 300}
    assert records[3]["subject"] == "42" and records[3]["detail"] == "spam"


async def test_since_and_limit_filter(env: dict[str, str], module_pool: asyncpg.Pool) -> None:
    for i in range(3):
        result = await run_cli(
            ["tenants", "add", f"since-{i}", "--name", "S"],
            {**env, "BOT_TOKEN": _token(730000010 + i), "KIE_API_KEY": "kie_" + "s" * 24},
        )
        assert result.code == 0, result.text
    # The first happened "yesterday" (rows are append-only: backdated through a fresh insert).
    await module_pool.execute(
        "INSERT INTO operator_audit (created_at, actor, action, tenant_slug) "
        "VALUES (now() - interval '2 days', 'operator:bob', 'tenant_update', 'since-0')"
    )
    recent = json.loads((await run_cli(["audit", "--since", "1d", "--json"], env)).out)
    assert [r["tenant"] for r in recent] == ["since-0", "since-1", "since-2"]
    day = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%d")
    assert len(json.loads((await run_cli(["audit", "--since", day, "--json"], env)).out)) == 4
    newest = json.loads((await run_cli(["audit", "--limit", "2", "--json"], env)).out)
    assert [r["tenant"] for r in newest] == ["since-1", "since-2"], "the newest two, oldest first"
    nothing = await run_cli(["audit", "since-1", "--since", "2099-01-01"], env)
    assert nothing.code == 0 and "nothing audited for since-1 in that time" in nothing.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["audit", "--since", "yesterday"], "since 'yesterday' must be a date"),
        (["audit", "--since", "2026-13-01"], "since '2026-13-01' must be a date"),
        (["audit", "--since", "0d"], "since '0d' must be"),
        (["audit", "--since", "999999d"], "since '999999d' must be"),
        (["audit", "--limit", "0"], "limit '0' must be a number from 1 to 10000"),
        (["audit", "--limit", "²"], "limit '²' must be"),
        (["audit", "Bad_Slug"], "slug 'Bad_Slug'"),
        (["audit", "never-was"], "no tenant 'never-was', and nothing audited under that name"),
    ],
)
async def test_bad_input_is_one_line_and_writes_nothing(
    env: dict[str, str], module_pool: asyncpg.Pool, args: list[str], message: str
) -> None:
    before = await module_pool.fetchval("SELECT count(*) FROM operator_audit")
    result = await run_cli(args, env)
    assert result.code == 1 and message in result.err, result.text
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.text
    assert await module_pool.fetchval("SELECT count(*) FROM operator_audit") == before


async def test_a_failed_change_is_not_audited(env: dict[str, str], module_pool: asyncpg.Pool) -> None:
    before = await module_pool.fetchval("SELECT count(*) FROM operator_audit")
    for args in (["tenants", "update", "no-such", "--markup", "2"], ["tenants", "remove", "no-such"]):
        assert (await run_cli(args, env)).code == 1
    assert await module_pool.fetchval("SELECT count(*) FROM operator_audit") == before


async def test_the_record_cannot_be_rewritten(module_pool: asyncpg.Pool) -> None:
    await module_pool.execute("INSERT INTO operator_audit (actor, action) VALUES ('operator:x', 'keys_rotate')")
    for statement in ("UPDATE operator_audit SET actor = 'operator:y'", "DELETE FROM operator_audit"):
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await module_pool.execute(statement)
    with pytest.raises(asyncpg.CheckViolationError):
        await module_pool.execute("INSERT INTO operator_audit (actor, action) VALUES ('admin:1', 'keys_rotate')")


@given(st.integers(min_value=1, max_value=99_999), st.sampled_from("mhd"))
def test_ages_are_before_now(amount: int, unit: str) -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    seconds = amount * {"m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_since(f"{amount}{unit}", now) == now - timedelta(seconds=seconds)


@given(st.text(max_size=30))
def test_anything_is_a_moment_or_an_input_error(text: str) -> None:
    try:
        moment = parse_since(text)
    except InputError as exc:
        assert "must be a date" in str(exc)
        return
    assert moment.tzinfo is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T10:30", datetime(2026, 11, 1, 10, 30, tzinfo=UTC)),
        ("2026-11-01 10:30:05Z", datetime(2026, 11, 1, 10, 30, 5, tzinfo=UTC)),
        ("2026-11-01T13:00+03:00", datetime(2026, 11, 1, 10, 0, tzinfo=UTC)),
    ],
)
def test_moments(text: str, expected: datetime) -> None:
    assert parse_since(text) == expected
