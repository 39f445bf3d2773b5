"""What a generation job has done to its user's money, read from the ledger.

Every message to a user that mentions a job's money (the result, a failure, an error after Generate,
/cancel during a generation) is worded from a `JobMoney` read here, never from what the code that
sends it believes happened. A job's money lives in at most two holds: `job:<id>`, reserved with the
job, and `job:<id>:late`, the charge of a result that arrived after the first hold had expired (see
`JobService._finish`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from tenant_runtime.billing.ledger import HoldStatus


class MoneyState(StrEnum):
    NOTHING = "nothing"  # no hold was ever placed: a free model, or no job at all
    HELD = "held"  # reserved: charged only if the generation succeeds, else returned
    CHARGED = "charged"  # spent
    RETURNED = "returned"  # the reservation came back to the balance (a failure, or the hold expired)
    WAIVED = "waived"  # a result delivered though its reservation had come back and could not be charged


@dataclass(frozen=True)
class JobMoney:
    state: MoneyState
    amount: int  # minor units concerned by `state`; 0 for NOTHING
    available: int  # the user's balance now
    held: int  # everything the user has reserved now (all jobs)
    currency: str  # of every amount above (they are in its minor units)


def hold_keys(job_id: int) -> tuple[str, str]:
    """The idempotency keys of a job's holds: the one placed at confirm, and a late charge."""
    return f"job:{job_id}", f"job:{job_id}:late"


def state_of(holds: Iterable[tuple[HoldStatus, int]], *, succeeded: bool) -> tuple[MoneyState, int]:
    """The job's money state from its holds' (status, amount); pure, so every combination is tested."""
    found = list(holds)
    charged = sum(amount for status, amount in found if status == "committed")
    if charged:
        return MoneyState.CHARGED, charged
    pending = sum(amount for status, amount in found if status == "pending")
    if pending:
        return MoneyState.HELD, pending
    returned = max((amount for status, amount in found if status in ("released", "expired")), default=0)
    if returned:
        return (MoneyState.WAIVED if succeeded else MoneyState.RETURNED), returned
    return MoneyState.NOTHING, 0


async def read_job_money(
    conn: asyncpg.Pool | asyncpg.Connection,
    tenant_id: int,
    user_id: int,
    job_id: int | None,
    *,
    succeeded: bool,
    currency: str,
) -> JobMoney:
    """The ledger state of `job_id` (None: no job was created) and the user's balance, as of now.
    `succeeded`: the job has a result (so money that came back was waived, not returned)."""
    account = await conn.fetchrow(
        "SELECT available, held FROM accounts WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id
    )
    available, held = (account["available"], account["held"]) if account else (0, 0)
    if job_id is None:
        return JobMoney(MoneyState.NOTHING, 0, available, held, currency)
    rows: Sequence[asyncpg.Record] = await conn.fetch(
        "SELECT status, amount FROM holds WHERE tenant_id = $1 AND idempotency_key = ANY($2::text[])",
        tenant_id,
        list(hold_keys(job_id)),
    )
    state, amount = state_of(((r["status"], r["amount"]) for r in rows), succeeded=succeeded)
    return JobMoney(state, amount, available, held, currency)
