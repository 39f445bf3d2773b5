"""Settling a generation's hold when its outcome is known, including the late-result rule.

A job's hold is committed on success and released on failure. The one party that resolves a hold
behind a job's back is the hold sweeper: the hold expired (its TTL is twice the job's timeout, at
least an hour) because no process finished the job in time. The rule for an outcome that arrives
after that:

- a failure has nothing left to return (the expiry returned it);
- a success (a *late result*) is charged again from the balance, at most once (its own hold key
  `job:<id>:late`), if the balance covers the price; if it does not, the result is still delivered,
  unpaid, and the loss is logged. No debt is recorded against the user: balances never go below
  zero, and the user agreed to pay a reservation that was then returned to them by our own sweeper.
"""

from __future__ import annotations

from enum import StrEnum

import asyncpg

from tenant_runtime.billing.job_money import hold_keys
from tenant_runtime.billing.ledger import InsufficientFunds, Ledger


class Settlement(StrEnum):
    COMMITTED = "committed"  # success: the hold was spent
    RELEASED = "released"  # failure: the hold came back
    ALREADY_RETURNED = "already_returned"  # failure after the hold expired: nothing to do
    LATE_CHARGED = "late_charged"  # success after the hold expired: charged again from the balance
    LATE_UNPAID = "late_unpaid"  # success after the hold expired, balance short: delivered unpaid


async def settle_job_hold(
    ledger: Ledger,
    conn: asyncpg.Connection,
    tenant_id: int,
    *,
    job_id: int,
    user_id: int,
    hold_id: int,
    price: int,
    ok: bool,
    correlation_id: str | None,
) -> Settlement:
    """Apply the outcome to the job's hold in the caller's transaction (which guards it to run once)."""
    if not ok:
        released = await ledger.release(tenant_id, hold_id, conn=conn)
        return Settlement.RELEASED if released else Settlement.ALREADY_RETURNED
    if await ledger.commit(tenant_id, hold_id, conn=conn):
        return Settlement.COMMITTED
    hold = await ledger.hold(tenant_id, hold_id, conn=conn)
    if hold is None or hold.status == "committed":
        return Settlement.COMMITTED  # settled before: never charge twice
    try:
        await ledger.charge(
            tenant_id, user_id, price, hold_keys(job_id)[1], correlation_id=correlation_id, actor="system", conn=conn
        )
    except InsufficientFunds:
        return Settlement.LATE_UNPAID
    return Settlement.LATE_CHARGED
