"""User balances in minor units (kopecks), per tenant, with an append-only ledger.

Every movement writes one `ledger_entries` row in the same transaction as the balance change it
records. `amount` is always positive; the direction of each kind is fixed by the schema's generated
`available_delta`/`held_delta` columns (`kinds.DELTAS` mirrors them):

    topup, admin_credit, bonus_welcome, bonus_referral, refund_reverted,
    promo                                                                 available +
    admin_debit, refund                                                   available -
    hold                                                                  available -, held +
    commit                                                                held -  (money is spent)
    release, expiry                                                       held -, available +

Balances only change through one conditional UPDATE (`available + delta >= 0`, in `core`), so
concurrent debits never overdraw. Every statement names the tenant. Methods take an optional `conn` to
join the caller's transaction (they run in a savepoint there); without it they use their own
transaction. Actors are 'system', 'user:<id>', 'admin:<id>' or 'operator:<name>' (enforced by the
schema).
"""

from __future__ import annotations

from tenant_runtime.billing.ledger.credits import Credits
from tenant_runtime.billing.ledger.errors import (
    ChargeConflict,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidRequest,
    LedgerError,
    RefundRefused,
)
from tenant_runtime.billing.ledger.holds import Holds
from tenant_runtime.billing.ledger.kinds import WELCOME_KIND, CreditKind, HoldStatus, Kind, welcome_key
from tenant_runtime.billing.ledger.reading import Reading
from tenant_runtime.billing.ledger.records import Balance, Discrepancy, Hold, LedgerEntry, StarRefund
from tenant_runtime.billing.ledger.stars import StarPayments

__all__ = [
    "WELCOME_KIND",
    "Balance",
    "ChargeConflict",
    "CreditKind",
    "Discrepancy",
    "Hold",
    "HoldStatus",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidRequest",
    "Kind",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "RefundRefused",
    "StarRefund",
    "welcome_key",
]


class Ledger(Credits, Holds, StarPayments, Reading):
    """One object for all of a tenant's money; each group of operations lives in its own module."""
