"""The tenant's day, as Postgres reckons it in the tenant's time zone (DST included): SQL fragments.

`$tz` is the IANA zone name; the fragments are used inside the queries that count a user's free uses,
so the day boundary and the counting read one clock, the database's.
"""

from __future__ import annotations

__all__ = ["DAY_START", "NEXT_DAY_START"]


def _start(tz_param: str, days: int) -> str:
    shift = f" + interval '{days} day'" if days else ""
    return f"timezone({tz_param}, date_trunc('day', timezone({tz_param}, now())){shift})"


DAY_START = _start("$3", 0)
"""Midnight that began today in the zone given as the query's third parameter, as a timestamptz."""
NEXT_DAY_START = _start("$3", 1)
"""The next midnight in that zone: when today's free quota resets."""
