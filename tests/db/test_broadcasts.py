"""Broadcast storage against real Postgres (issue 17, item 4): audiences, one transaction per creation,
claims that two senders never share, a dead sender's claims never sent again, finished exactly once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.db import POOL_SESSION, create_pool, session_name
from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.broadcasts import store
from tenant_runtime.broadcasts.model import Audience, BroadcastStatus, Content, ContentKind, RecipientStatus
from tenant_runtime.moderation import bans
from tenant_runtime.moderation.audit import AuditAction, recent
from tenant_runtime.users import Users
from tests import own_database
from tests.helpers import add_bare_tenants

TEXT = Content(ContentKind.TEXT, "<b>Sale</b>")
ADMIN = 4242
_bots = iter(range(883_700_000, 883_800_000))


database_url = own_database.database_url
pool = own_database.pool


@pytest.fixture
async def sender_pool(database_url: str) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    """A sender process: its own sessions, named as a supervisor's are, so it counts as alive."""
    identity = f"sender.{secrets.token_hex(3)}"
    p = await create_pool(database_url, 4, application_name=session_name(POOL_SESSION, identity))
    yield p, identity
    await p.close()


async def _tenant(pool: asyncpg.Pool, users: int) -> tuple[int, list[int]]:
    (config,) = await add_bare_tenants(pool, f"cast{secrets.token_hex(3)}", 1, first_bot_id=next(_bots))
    ids = [config.id * 1000 + i for i in range(users)]
    for user in ids:
        await Users(pool).touch(config.id, user, language="ru", first_name="U", username=None)
    return config.id, ids


async def _create(
    pool: asyncpg.Pool, tenant: int, audience: Audience = Audience.ALL, draft: str = "d"
) -> store.Created:
    return await store.create(
        pool,
        tenant,
        draft=draft,
        admin_id=ADMIN,
        admin_chat_id=ADMIN,
        language="ru",
        audience=audience,
        content=TEXT,
    )


async def test_audiences_leave_out_banned_and_blocked_users(pool: asyncpg.Pool) -> None:
    tenant, users = await _tenant(pool, 6)
    await bans.ban(pool, Ledger(pool), tenant, users[0], ADMIN, "spam")
    await pool.execute(
        "UPDATE bot_users SET blocked_at = now() WHERE tenant_id = $1 AND user_id = $2", tenant, users[1]
    )
    await pool.execute(
        "UPDATE bot_users SET last_seen_at = now() - interval '31 days' WHERE tenant_id = $1 AND user_id = $2",
        tenant,
        users[2],
    )
    await Ledger(pool).record_star_payment(tenant, users[3], "charge-1", 50, 7500, "payload")
    sizes = await store.audience_sizes(pool, tenant)
    assert sizes == {Audience.ALL: 4, Audience.PAID: 1, Audience.ACTIVE: 3}
    created = await _create(pool, tenant, Audience.ACTIVE)
    assert created.new and created.broadcast is not None and created.broadcast.total == 3
    recipients = await pool.fetch(
        "SELECT user_id FROM broadcast_recipients WHERE broadcast_id = $1 ORDER BY user_id", created.broadcast.id
    )
    assert [r["user_id"] for r in recipients] == [users[3], users[4], users[5]]
    # Writing again clears the block.
    await Users(pool).touch(tenant, users[1], language="ru", first_name="U", username=None)
    assert (await store.audience_sizes(pool, tenant))[Audience.ALL] == 5


async def test_a_double_tap_finds_the_same_broadcast_and_a_second_one_waits(pool: asyncpg.Pool) -> None:
    tenant, _users = await _tenant(pool, 3)
    first = await _create(pool, tenant, draft="one")
    again = await _create(pool, tenant, draft="one")
    assert first.broadcast is not None and again.broadcast is not None
    assert again.broadcast.id == first.broadcast.id and not again.new
    other = await _create(pool, tenant, draft="two")
    assert other.busy and other.broadcast is not None and other.broadcast.id == first.broadcast.id
    assert await pool.fetchval("SELECT count(*) FROM broadcasts WHERE tenant_id = $1", tenant) == 1
    assert (
        await pool.fetchval("SELECT count(*) FROM broadcast_recipients WHERE broadcast_id = $1", first.broadcast.id)
        == 3
    )


async def test_an_empty_audience_writes_nothing(pool: asyncpg.Pool) -> None:
    tenant, _users = await _tenant(pool, 2)
    created = await _create(pool, tenant, Audience.PAID)
    assert created.broadcast is None and not created.busy
    assert await pool.fetchval("SELECT count(*) FROM broadcasts WHERE tenant_id = $1", tenant) == 0
    assert await recent(pool, tenant) == []


async def test_two_senders_never_claim_the_same_recipient(
    pool: asyncpg.Pool, sender_pool: tuple[asyncpg.Pool, str]
) -> None:
    other_pool, other = sender_pool
    tenant, users = await _tenant(pool, 60)
    created = await _create(pool, tenant)
    assert created.broadcast is not None
    bid = created.broadcast.id

    async def drain(p: asyncpg.Pool, instance: str) -> list[int]:
        taken = []
        while (claimed := await store.claim(p, bid, instance)) is not None:
            taken.append(claimed.user_id)
            await store.record_result(p, bid, tenant, claimed.user_id, instance, RecipientStatus.SENT)
        return taken

    mine, theirs = await asyncio.gather(drain(pool, "tests-a"), drain(other_pool, other))
    assert sorted(mine + theirs) == sorted(users) and not set(mine) & set(theirs)
    done = await store.finish_if_done(pool, bid)
    assert done is not None and done.status is BroadcastStatus.DONE
    assert await store.finish_if_done(pool, bid) is None, "finished once"
    progress = await store.progress(pool, bid)
    assert (progress.sent, progress.pending, progress.total) == (60, 0, 60)


async def test_a_dead_senders_claim_is_never_sent_again_and_a_live_ones_is_left_alone(
    pool: asyncpg.Pool, sender_pool: tuple[asyncpg.Pool, str]
) -> None:
    live_pool, live = sender_pool
    tenant, _users = await _tenant(pool, 3)
    created = await _create(pool, tenant)
    assert created.broadcast is not None
    bid = created.broadcast.id
    dead = f"gone.{secrets.token_hex(3)}"  # no Postgres session by this name: its process is gone
    first = await store.claim(pool, bid, dead)
    second = await store.claim(live_pool, bid, live)
    assert first is not None and second is not None
    assert await store.resolve_orphans(pool, bid, "tests-new-holder") == 1
    statuses = dict(await pool.fetch("SELECT user_id, status FROM broadcast_recipients WHERE broadcast_id = $1", bid))
    assert statuses[first.user_id] == RecipientStatus.UNKNOWN and statuses[second.user_id] == RecipientStatus.SENDING
    # The dead sender's late answer changes nothing; the live one records its own.
    assert not await store.record_result(pool, bid, tenant, first.user_id, dead, RecipientStatus.SENT)
    assert await store.record_result(live_pool, bid, tenant, second.user_id, live, RecipientStatus.BLOCKED)
    assert await pool.fetchval(
        "SELECT blocked_at IS NOT NULL FROM bot_users WHERE tenant_id = $1 AND user_id = $2", tenant, second.user_id
    )
    progress = await store.progress(pool, bid)
    assert (progress.unknown, progress.blocked, progress.pending) == (1, 1, 1)


async def test_pause_resume_cancel_are_guarded_and_audited(pool: asyncpg.Pool) -> None:
    tenant, _users = await _tenant(pool, 4)
    created = await _create(pool, tenant)
    assert created.broadcast is not None
    bid = created.broadcast.id
    paused = await store.set_status(pool, tenant, bid, BroadcastStatus.PAUSED, ADMIN)
    assert paused is not None and paused.status is BroadcastStatus.PAUSED
    assert await store.claim(pool, bid, "tests") is None, "a paused broadcast sends nothing"
    assert bid in {b.id for b in await store.open_broadcasts(pool)}, "a paused broadcast is still open"
    assert await store.set_status(pool, tenant, bid, BroadcastStatus.PAUSED, ADMIN) is None
    assert await store.set_status(pool, tenant, bid, BroadcastStatus.RUNNING, ADMIN) is not None
    assert await store.claim(pool, bid, "tests") is not None
    cancelled = await store.set_status(pool, tenant, bid, BroadcastStatus.CANCELLED, ADMIN)
    assert cancelled is not None and cancelled.finished_at is not None
    assert await store.claim(pool, bid, "tests") is None
    assert bid not in {b.id for b in await store.open_broadcasts(pool)}, "a cancelled broadcast is closed"
    assert await store.set_status(pool, tenant, bid, BroadcastStatus.RUNNING, ADMIN) is None, "cancelled stays"
    actions = [e.action for e in await recent(pool, tenant)]
    assert actions == [
        AuditAction.BROADCAST_CANCEL,
        AuditAction.BROADCAST_RESUME,
        AuditAction.BROADCAST_PAUSE,
        AuditAction.BROADCAST_START,
    ]
    other = await store.set_status(pool, tenant + 10_000, bid, BroadcastStatus.PAUSED, ADMIN)
    assert other is None, "another tenant's admin cannot touch it"
