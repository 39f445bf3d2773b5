"""Exports as CSV: streamed in chunks from a server-side cursor, UTF-8 with a byte order mark, `,` or `;`,
formula-looking cells defused; the CLI's bad inputs are one line each and print no CSV."""

from __future__ import annotations

import csv
import io
import secrets
from datetime import UTC, datetime

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.shop_history import seed_shop_history
from shared.crypto import KeyRing, generate_key
from supervisor.tenants import NewTenant, TenantStore
from tenant_runtime.exports import CHUNK_ROWS, ExportKind, _cell, _encode, export_csv
from tests.helpers import cli_env, make_token, run_cli

EVERYTHING = datetime(2000, 1, 1, tzinfo=UTC)


@given(st.lists(st.lists(st.text(max_size=20), min_size=1, max_size=4), min_size=1, max_size=5), st.sampled_from(",;"))
def test_any_cells_read_back_as_written_except_defused_formulas(rows: list[list[str]], separator: str) -> None:
    parsed = list(csv.reader(io.StringIO(_encode(rows, separator).decode(), newline=""), delimiter=separator))
    assert parsed == [[_cell(v) for v in row] for row in rows]
    for row in parsed:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@")), "a spreadsheet would run it"


def test_formula_looking_cells_get_an_apostrophe() -> None:
    assert [_cell(v) for v in ("=HYPERLINK(1)", "+1", "-x", "@me", "Анна", None, True, 5)] == [
        "'=HYPERLINK(1)",
        "'+1",
        "'-x",
        "'@me",
        "Анна",
        "",
        "yes",
        "5",
    ]


async def _shop(pool: asyncpg.Pool, key: str) -> int:
    bot_id = 881_300_000 + secrets.randbelow(90_000)
    store = TenantStore(pool, KeyRing([key]))
    config = await store.add(NewTenant(f"exp-{secrets.token_hex(3)}", "Exp", make_token(bot_id), bot_id, None, []))
    return config.id


async def test_every_row_streamed_in_chunks_with_a_bom_and_a_header(module_pool: asyncpg.Pool) -> None:
    tenant_id = await _shop(module_pool, generate_key())
    history = await seed_shop_history(module_pool, tenant_id, users=2500, topups=10, generations=30, seed=5)
    chunks = [c async for c in export_csv(module_pool, tenant_id, ExportKind.USERS, EVERYTHING, separator=";")]
    assert len(chunks) == 1 + -(-2500 // CHUNK_ROWS), "header, then one chunk per CHUNK_ROWS rows"
    data = b"".join(chunks)
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert rows[0][:2] == ["user_id", "username"]
    assert sorted(int(r[0]) for r in rows[1:]) == sorted(history.users)
    generations = [c async for c in export_csv(module_pool, tenant_id, ExportKind.GENERATIONS, EVERYTHING)]
    lines = b"".join(generations).decode("utf-8-sig").splitlines()
    assert len(lines) == 1 + 30 and lines[0].startswith("job_id,created_at")
    with pytest.raises(ValueError, match="separator"):
        [c async for c in export_csv(module_pool, tenant_id, ExportKind.USERS, EVERYTHING, separator="|")]


async def test_the_cli_streams_a_shop_and_refuses_bad_input_with_one_line(
    module_database: str, module_pool: asyncpg.Pool
) -> None:
    key = generate_key()
    tenant_id = await _shop(module_pool, key)
    slug = await module_pool.fetchval("SELECT slug FROM tenants WHERE id = $1", tenant_id)
    await seed_shop_history(module_pool, tenant_id, users=20, topups=5, generations=8, seed=7, first_user=5_000_000)
    env = cli_env(module_database, key)
    good = await run_cli(["export", slug, "generations", "--separator", ";", "--since", "60d"], env)
    assert good.code == 0, good.err
    assert good.out.startswith("\ufeffjob_id;created_at") and len(good.out.splitlines()) == 1 + 8
    for args, message in (
        (["export", slug, "bananas"], "must be one of: users, payments, generations"),
        (["export", slug, "users", "--separator", "|"], "separator"),
        (["export", slug, "users", "--since", "yesterday"], "since"),
        (["export", "no-such-shop", "users"], "no tenant 'no-such-shop'"),
        (["export", "BAD SLUG", "users"], "slug"),
    ):
        bad = await run_cli(args, env)
        assert bad.code == 1 and message in bad.err and bad.out == "", args
        assert "Traceback" not in bad.err
