"""What the ledger reads back: balances, holds, entries, reconciliation findings, refunds under way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tenant_runtime.billing.ledger.kinds import HoldStatus, Kind


@dataclass(frozen=True)
class Balance:
    available: int
    held: int


@dataclass(frozen=True)
class Hold:
    id: int
    tenant_id: int
    user_id: int
    amount: int
    idempotency_key: str
    status: HoldStatus
    expires_at: datetime
    correlation_id: str | None
    created_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    tenant_id: int
    user_id: int
    kind: Kind
    amount: int
    available_delta: int
    held_delta: int
    hold_id: int | None
    unique_key: str | None
    reference: str | None
    correlation_id: str | None
    actor: str
    reason: str | None
    available_after: int
    held_after: int
    created_at: datetime


@dataclass(frozen=True)
class Discrepancy:
    """An account whose balances disagree with its ledger sum or (for `held`) its pending holds."""

    tenant_id: int
    user_id: int
    available: int
    held: int
    ledger_available: int
    ledger_held: int
    pending_held: int


@dataclass(frozen=True)
class StarRefund:
    """A refund debited and marked 'refunding': call refundStarPayment(user_id, charge_id), then finish."""

    tenant_id: int
    charge_id: str
    user_id: int
    stars: int
    amount_minor: int


HOLD_COLUMNS = (
    "id, tenant_id, user_id, amount, idempotency_key, status, expires_at, correlation_id, created_at, resolved_at"
)
ENTRY_COLUMNS = (
    "id, tenant_id, user_id, kind, amount, available_delta, held_delta, hold_id, unique_key, "
    "reference, correlation_id, actor, reason, available_after, held_after, created_at"
)
