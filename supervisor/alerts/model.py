"""What an incident is: a kind and a subject (a tenant, a replica, a loop) that is true right now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["DETAIL_CHARS", "Event", "Incident", "Kind", "Notice"]

DETAIL_CHARS = 300


class Kind(StrEnum):
    TOKEN_INVALID = "token_invalid"  # noqa: S105 - an incident kind, not a password
    QUARANTINED = "quarantined"
    BACKOFF = "backoff"
    KIE_CREDITS = "kie_credits"
    KIE_AUTH = "kie_auth"
    REFUNDS_UNSETTLED = "refunds_unsettled"
    DATABASE = "database_unreachable"
    REPLICA_NOT_SERVING = "replica_not_serving"
    REPLICA_SILENT = "replica_silent"
    LOCK_TABLE_FULL = "lock_table_full"
    LOOP_FAILING = "loop_failing"
    TEST = "test"


class Event(StrEnum):
    ALERT = "alert"
    RECOVERY = "recovery"
    DIGEST = "digest"


@dataclass(frozen=True)
class Incident:
    kind: Kind
    subject: str  # a tenant slug, an instance identity, <instance>/<loop>, or "postgres"
    detail: str = ""  # already redacted: the last error, a count

    @property
    def key(self) -> str:
        return f"{self.kind.value}:{self.subject}"


@dataclass(frozen=True)
class Notice:
    """One incident's alert or recovery, as it goes out."""

    event: Event
    incident: Incident
    opened_at: datetime
    resolved_at: datetime | None = None
