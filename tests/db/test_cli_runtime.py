"""`tenants show` and `tenants list` tell the runtime as the supervisors published it, from a shell with
no supervisor in it: state, the process reporting it, since when, last error (redacted), open jobs,
last update; `--state` filters; reports of processes that are gone do not count."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from shared.crypto import KeyRing, generate_key
from supervisor.tenants import NewTenant, TenantStore
from tenant_runtime.config import TenantConfig
from tests.helpers import assert_no_secrets, cli_env, make_token, run_cli

KEY = generate_key()


@dataclass(frozen=True)
class World:
    env: dict[str, str]
    sick: TenantConfig  # in backoff on one live process
    served: TenantConfig  # active on one process, backoff on another
    orphan: TenantConfig  # reported only by a process that is gone
    live: str
    peer: str


@pytest.fixture
async def world(database_url: str, pool: asyncpg.Pool) -> AsyncIterator[World]:
    store = TenantStore(pool, KeyRing([KEY]))
    tag = secrets.token_hex(2)
    base = 770000000 + secrets.randbelow(10**5) * 10
    sick, served, orphan = [
        await store.add(NewTenant(f"rt{tag}-{name}", name.title(), make_token(base + i, "r"), base + i, None, [111]))
        for i, name in enumerate(("sick", "served", "orphan"))
    ]
    live, peer, gone = (f"{name}-{tag}.{secrets.token_hex(3)}" for name in ("live", "peer", "gone"))
    try:  # a setup that fails half-way must not leave tenants of another master key behind
        await pool.execute(
            "INSERT INTO instances (name, host, pid, version) VALUES ($1, 'host-a', 11, 't'), ($2, 'host-b', 12, 't'),"
            " ($3, 'host-c', 13, 't')",
            live,
            peer,
            gone,
        )
        await pool.execute("UPDATE instances SET heartbeat_at = now() - interval '5 minutes' WHERE name = $1", gone)
        rows = [
            # The error carries the bot token, as an exception text might: it must never be shown.
            (sick.id, live, "backoff", f"TelegramServerError: Bad Gateway for bot{sick.bot_token}/getMe", "3 minutes"),
            (served.id, live, "active", None, "1 minute"),
            (served.id, peer, "backoff", "ClientConnectorError: cannot connect", "2 minutes"),
            (orphan.id, gone, "active", None, "10 minutes"),
        ]
        for tid, instance, state, error, ago in rows:
            await pool.execute(
                "INSERT INTO tenant_runtime_states (tenant_id, instance, state, last_error, since, troubled_since) "
                "VALUES ($1, $2, $3, $4, now() - $5::text::interval, CASE WHEN $3 = 'backoff' THEN now() - $5::text::interval END)",
                tid,
                instance,
                state,
                error,
                ago,
            )
        await pool.execute("INSERT INTO lock_holders (tenant_id, instance) VALUES ($1, $2)", served.id, live)
        for n in range(2):
            await pool.execute(
                """INSERT INTO jobs (tenant_id, user_id, chat_id, model, params, kie_input, price, idempotency_key,
                       correlation_id, status, deadline_at)
                   VALUES ($1, 1, 1, 'm', '{}', '{}', 10, $2, 'c', $3, now() + interval '1 hour')""",
                sick.id,
                f"rt-{tag}-{n}",
                ("submitted", "delivered")[n],
            )
        await pool.execute(
            "INSERT INTO updates_inbox (tenant_id, update_id, payload, claimed_by, status, received_at) "
            "VALUES ($1, 5, '{}', 'x', 'done', now() - interval '2 minutes'), "
            "($1, 7, '{}', 'x', 'done', now() - interval '1 minute')",
            sick.id,
        )
        yield World(cli_env(database_url, KEY), sick, served, orphan, live, peer)
    finally:
        await pool.execute("DELETE FROM tenants WHERE id = ANY($1::bigint[])", [sick.id, served.id, orphan.id])
        await pool.execute("DELETE FROM instances WHERE name = ANY($1::text[])", [live, peer, gone])


async def test_show_tells_state_since_error_jobs_and_last_update(world: World) -> None:
    shown = await run_cli(["tenants", "show", world.sick.slug, "--json"], world.env)
    assert shown.code == 0, shown.text
    info = json.loads(shown.out)
    assert info["state"] == "backoff"
    assert info["state_reported_by"] == world.live
    assert 170 <= info["state_age_s"] <= 240
    assert info["last_error"].startswith("TelegramServerError: Bad Gateway for bot")
    assert info["open_jobs"] == 1, "submitted counts, delivered does not"
    assert 50 <= info["last_update_age_s"] <= 120, "the newest update, not the first"
    assert [r["instance"] for r in info["instances"]] == [world.live]

    text = await run_cli(["tenants", "show", world.sick.slug], world.env)
    assert text.code == 0, text.text
    assert "backoff" in text.out and "min ago" in text.out and "TelegramServerError" in text.out
    assert f"instance {world.live}" in text.out and "in trouble for 3 min" in text.out
    assert_no_secrets(shown.text + text.text, [world.sick.bot_token, KEY])


async def test_the_state_of_a_tenant_is_active_when_some_live_process_serves_it(world: World) -> None:
    info = json.loads((await run_cli(["tenants", "show", world.served.slug, "--json"], world.env)).out)
    assert info["state"] == "active" and info["state_reported_by"] == world.live
    assert info["runtime"].startswith(f"running: lock held by {world.live} on host-a (pid 11)")
    assert {r["instance"]: r["state"] for r in info["instances"]} == {world.live: "active", world.peer: "backoff"}


async def test_reports_of_a_process_that_is_gone_do_not_count(world: World) -> None:
    info = json.loads((await run_cli(["tenants", "show", world.orphan.slug, "--json"], world.env)).out)
    assert info["state"] == "not_running" and info["instances"] == []


async def test_list_shows_the_runtime_and_filters_by_state(world: World) -> None:
    listed = await run_cli(["tenants", "list"], world.env)
    assert listed.code == 0, listed.text
    line = next(li for li in listed.out.splitlines() if li.startswith(world.sick.slug))
    assert "backoff" in line and "TelegramServerError" in line and "min ago" in line
    assert world.live not in line, "nobody holds its lock (the HOLDER column)"
    served = next(li for li in listed.out.splitlines() if li.startswith(world.served.slug))
    assert "active" in served and world.live in served

    backoff = await run_cli(["tenants", "list", "--state", "backoff", "--json"], world.env)
    assert backoff.code == 0, backoff.text
    slugs = {row["slug"] for row in json.loads(backoff.out)}
    assert world.sick.slug in slugs and world.served.slug not in slugs and world.orphan.slug not in slugs

    not_running = await run_cli(["tenants", "list", "--state", "not_running"], world.env)
    assert world.orphan.slug in not_running.out and world.sick.slug not in not_running.out

    bad = await run_cli(["tenants", "list", "--state", "sleeping"], world.env)
    assert bad.code == 2 and "invalid choice: 'sleeping'" in bad.err and "Traceback" not in bad.err
    assert_no_secrets(listed.text + backoff.text + not_running.text, [world.sick.bot_token, KEY])


async def test_a_filter_nobody_matches_says_so(world: World) -> None:
    result = await run_cli(["tenants", "list", "--state", "quarantined"], world.env)
    assert result.code == 0 and "no tenant is quarantined" in result.out, result.text
