"""Incident state in Postgres: opened when first seen, resolved when no longer seen, deleted once its
recovery has reached every channel that had its alert. Only the sender calls this, inside its
transaction under the platform lock, so a sender change neither resends nor forgets anything."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from supervisor.alerts.model import Event, Incident, Kind, Notice

__all__ = ["Due", "StoredIncident", "due_notices", "reconcile", "record_delivery"]


@dataclass(frozen=True)
class StoredIncident:
    incident: Incident
    opened_at: datetime
    resolved_at: datetime | None
    alerted_to: frozenset[str]
    recovered_to: frozenset[str]


@dataclass(frozen=True)
class Due:
    notice: Notice
    channels: frozenset[str]  # the channels that still miss this notice


def _stored(row: asyncpg.Record) -> StoredIncident:
    return StoredIncident(
        Incident(Kind(row["kind"]), row["subject"], row["detail"]),
        row["opened_at"],
        row["resolved_at"],
        frozenset(row["alerted_to"]),
        frozenset(row["recovered_to"]),
    )


# Resolved, and every configured channel that had the alert has the recovery (none had it: the rate limit
# held the alert back until the incident was over, so there is nothing to recover from).
_DROP_FINISHED = """
DELETE FROM alert_incidents
WHERE resolved_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM unnest(alerted_to) c WHERE c = ANY($1::text[]) AND NOT c = ANY(recovered_to))
"""


async def reconcile(
    conn: asyncpg.Connection, found: Mapping[str, Incident], channels: Collection[str]
) -> list[StoredIncident]:
    """Make the stored incidents match what is true now; return them."""
    rows = {r["key"]: r for r in await conn.fetch("SELECT * FROM alert_incidents ORDER BY opened_at FOR UPDATE")}
    new = [incident for key, incident in found.items() if key not in rows]
    if new:
        await conn.execute(
            "INSERT INTO alert_incidents (key, kind, subject, detail) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])",
            [i.key for i in new],
            [i.kind.value for i in new],
            [i.subject for i in new],
            [i.detail for i in new],
        )
    gone = [k for k, r in rows.items() if r["resolved_at"] is None and k not in found]
    if gone:
        await conn.execute("UPDATE alert_incidents SET resolved_at = now() WHERE key = ANY($1::text[])", gone)
    # Seen again before its recovery went out: the same incident goes on (no second alert).
    back = [k for k, r in rows.items() if r["resolved_at"] is not None and k in found]
    if back:
        await conn.execute(
            "UPDATE alert_incidents SET resolved_at = NULL, recovered_to = '{}' WHERE key = ANY($1::text[])", back
        )
    await conn.execute(_DROP_FINISHED, list(channels))
    return [_stored(r) for r in await conn.fetch("SELECT * FROM alert_incidents ORDER BY opened_at, key")]


def due_notices(stored: list[StoredIncident], channels: Collection[str]) -> list[Due]:
    """What each incident still owes to which channels: its alert while open, its recovery once resolved
    (only to the channels that had the alert)."""
    due = []
    configured = frozenset(channels)
    for s in stored:
        if s.resolved_at is None:
            missing = configured - s.alerted_to
            event = Event.ALERT
        else:
            missing = (s.alerted_to & configured) - s.recovered_to
            event = Event.RECOVERY
        if missing:
            due.append(Due(Notice(event, s.incident, s.opened_at, s.resolved_at), missing))
    return due


async def record_delivery(
    conn: asyncpg.Connection,
    sender: str,
    event: Event,
    notices: list[Notice],
    channels: list[str],
    body: str,
    configured: Collection[str],
) -> None:
    """The channels that took a message about these notices; finished incidents are deleted."""
    if not channels:
        return
    for column, which in (("alerted_to", Event.ALERT), ("recovered_to", Event.RECOVERY)):
        keys = [n.incident.key for n in notices if n.event is which]
        if keys:
            await conn.execute(
                f"UPDATE alert_incidents SET {column} = ARRAY(SELECT DISTINCT unnest({column} || $2::text[])) "
                "WHERE key = ANY($1::text[])",
                keys,
                channels,
            )
    await conn.execute(
        "INSERT INTO alert_deliveries (sender, event, keys, channels, body) VALUES ($1, $2, $3, $4, $5)",
        sender,
        event.value,
        [n.incident.key for n in notices],
        channels,
        body,
    )
    await conn.execute(_DROP_FINISHED, list(configured))
