"""First contact: the welcome bonus is owed while no welcome entry exists, not only on the inserting update."""

from __future__ import annotations

import asyncpg

from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.users import Users
from tests.db.test_ledger import make_tenant


async def test_a_retried_first_update_still_owes_the_welcome_bonus(pool: asyncpg.Pool) -> None:
    users, ledger = Users(pool), Ledger(pool)
    tenant = await make_tenant(pool)
    first = await users.touch(tenant, 1, language="ru", first_name=None, username=None, welcome=True)
    assert (first.is_new, first.first_contact, first.welcome_due) == (True, True, True)
    # The first attempt recorded the user, then failed before the bonus: the retry finds the user.
    retry = await users.touch(tenant, 1, language="ru", first_name=None, username=None, welcome=True)
    assert (retry.is_new, retry.first_contact, retry.welcome_due) == (False, True, True)
    assert await ledger.grant_welcome_bonus(tenant, 1, 500)
    later = await users.touch(tenant, 1, language="ru", first_name=None, username=None, welcome=True)
    assert (later.first_contact, later.welcome_due) == (True, False)
    # A tenant without a welcome bonus owes nothing.
    plain = await users.touch(tenant, 2, language="ru", first_name=None, username=None)
    assert (plain.is_new, plain.welcome_due) == (True, False)


async def test_users_past_their_first_day_are_not_welcomed_when_a_bonus_is_switched_on(pool: asyncpg.Pool) -> None:
    users = Users(pool)
    tenant = await make_tenant(pool)
    await users.touch(tenant, 3, language="en", first_name=None, username=None)
    await pool.execute(
        "UPDATE bot_users SET created_at = now() - interval '2 days' WHERE tenant_id = $1 AND user_id = 3", tenant
    )
    old = await users.touch(tenant, 3, language="en", first_name=None, username=None, welcome=True)
    assert (old.is_new, old.first_contact, old.welcome_due) == (False, False, False)
