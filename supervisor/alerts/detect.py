"""Incident detection: what is wrong right now, read from Postgres (level-triggered).

Nothing here remembers the past: every evaluation asks what is true now, so a missed evaluation, a new
sender or a restart changes nothing. Tenants' states come from what every live process published
(supervisor.publish), replicas' health from `instance_health`, KIE's verdicts from the jobs they
failed, Stars refunds from `star_payments`.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from shared.redact import REDACTOR
from supervisor.alerts.model import DETAIL_CHARS, Incident, Kind
from supervisor.alerts.texts import duration
from supervisor.runtime_view import FRESH_SECONDS

__all__ = ["Thresholds", "detect"]

# How tenant_runtime.generation.jobs words a createTask refused by KIE in `jobs.fail_detail`.
KIE_REFUSED = {"createTask code 402": Kind.KIE_CREDITS, "createTask code 401": Kind.KIE_AUTH}


@dataclass(frozen=True)
class Thresholds:
    backoff_seconds: float = 300.0  # a tenant not able to start for this long
    replica_seconds: float = 60.0  # a replica not serving, or silent, for this long
    refund_seconds: float = 3600.0  # a Stars refund without Telegram's answer for this long
    kie_window_hours: int = 24  # how far back a KIE refusal still counts when nothing was submitted since


_TENANTS_SQL = f"""
SELECT t.slug, t.status,
       coalesce(bool_or(s.state = 'active'), false) AS served,
       coalesce(bool_or(s.state = 'token_invalid'), false) AS token_invalid,
       coalesce(bool_or(s.state = 'quarantined'), false) AS quarantined,
       min(s.troubled_since) FILTER (WHERE s.state IN ('backoff', 'starting')) < now() - make_interval(secs => $1)
           AS stuck,
       (array_agg(s.last_error ORDER BY s.updated_at DESC) FILTER (WHERE s.last_error IS NOT NULL))[1] AS error
FROM tenants t
LEFT JOIN (tenant_runtime_states s
           JOIN instances i ON i.name = s.instance AND i.heartbeat_at > now() - make_interval(secs => {FRESH_SECONDS}))
       ON s.tenant_id = t.id
WHERE t.status NOT IN ('disabled', 'pending', 'paused')
GROUP BY t.id, t.slug, t.status
HAVING t.status = 'token_invalid' OR bool_or(s.state IN ('token_invalid', 'quarantined', 'backoff', 'starting'))
"""

_INSTANCES_SQL = """
SELECT i.name, extract(epoch FROM now() - i.heartbeat_at)::float8 AS silent_s,
       h.cannot_serve, h.not_serving_since < now() - make_interval(secs => $1) AS not_serving,
       coalesce(h.locks_unavailable, 0) AS locks_unavailable, coalesce(h.loops_failing, '{}') AS loops_failing
FROM instances i LEFT JOIN instance_health h ON h.instance = i.name
WHERE i.heartbeat_at > now() - interval '1 hour'  -- older rows are deleted by any replica's heartbeat
ORDER BY i.name
"""

# The newest job that reached KIE's verdict on createTask (a task id, or a refusal) per tenant, in the
# window: a refusal is an incident until a later job gets a task id.
_KIE_SQL = """
SELECT t.slug, j.fail_detail
FROM tenants t
CROSS JOIN LATERAL (
    SELECT fail_detail FROM jobs
    WHERE tenant_id = t.id AND created_at > now() - make_interval(hours => $1)
      AND (task_id IS NOT NULL OR fail_detail = ANY($2::text[]))
    ORDER BY created_at DESC, id DESC LIMIT 1
) j
WHERE t.status NOT IN ('disabled', 'pending', 'paused') AND j.fail_detail = ANY($2::text[])
"""

_REFUNDS_SQL = """
SELECT t.slug, count(*)::int AS n
FROM star_payments p JOIN tenants t ON t.id = p.tenant_id
WHERE p.status = 'refunding' AND p.refund_started_at < now() - make_interval(secs => $1)
GROUP BY t.slug
"""


def _detail(text: str | None) -> str:
    return REDACTOR.redact(text or "")[:DETAIL_CHARS]


async def detect(conn: asyncpg.Connection, limits: Thresholds, language: str) -> dict[str, Incident]:
    found: list[Incident] = []
    for row in await conn.fetch(_TENANTS_SQL, limits.backoff_seconds):
        slug, error = row["slug"], _detail(row["error"])
        if row["status"] == "token_invalid" or row["token_invalid"]:
            found.append(Incident(Kind.TOKEN_INVALID, slug))
        elif row["served"]:
            continue  # some live process serves it: the others' trouble is theirs (replica incidents)
        elif row["quarantined"]:
            found.append(Incident(Kind.QUARANTINED, slug, error))
        elif row["stuck"]:
            found.append(Incident(Kind.BACKOFF, slug, error))
    locks_unavailable = 0
    for row in await conn.fetch(_INSTANCES_SQL, limits.replica_seconds):
        name = row["name"]
        if row["silent_s"] > limits.replica_seconds:
            found.append(Incident(Kind.REPLICA_SILENT, name, duration(row["silent_s"], language)))
            continue
        if row["silent_s"] > FRESH_SECONDS:
            continue  # not yet silent long enough, and what it published is no longer current
        if row["not_serving"]:
            found.append(Incident(Kind.REPLICA_NOT_SERVING, name, _detail(row["cannot_serve"])))
        locks_unavailable = max(locks_unavailable, row["locks_unavailable"])
        found += [
            Incident(Kind.LOOP_FAILING, f"{name}/{loop}", _loop_detail(language)) for loop in row["loops_failing"]
        ]
    if locks_unavailable:
        found.append(Incident(Kind.LOCK_TABLE_FULL, "postgres", _unheld(locks_unavailable, language)))
    for row in await conn.fetch(_KIE_SQL, limits.kie_window_hours, list(KIE_REFUSED)):
        found.append(Incident(KIE_REFUSED[row["fail_detail"]], row["slug"]))
    for row in await conn.fetch(_REFUNDS_SQL, limits.refund_seconds):
        found.append(Incident(Kind.REFUNDS_UNSETTLED, row["slug"], str(row["n"])))
    return {incident.key: incident for incident in found}


def _loop_detail(language: str) -> str:
    return (
        "3+ перезапуска или сбоя за 10 мин, или нет прогресса"
        if language == "ru"
        else "3+ restarts or failed ticks in 10 min, or no progress"
    )


def _unheld(count: int, language: str) -> str:
    return f"{count} ботов без блокировки" if language == "ru" else f"{count} bots unheld"
