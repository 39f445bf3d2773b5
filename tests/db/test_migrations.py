"""Migrations: ordered, recorded, idempotent, and safe when two processes migrate at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg

from shared import migrations
from shared.db import connect_dedicated


async def test_apply_twice_is_a_noop(fresh_database: str) -> None:
    conn = await connect_dedicated(fresh_database, application_name="t")
    try:
        first = await migrations.apply_all(conn)
        second = await migrations.apply_all(conn)
        recorded = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        await conn.close()
    assert first == [m.version for m in migrations.discover()]
    assert second == []
    assert recorded == first


async def test_two_processes_migrating_at_once(fresh_database: str) -> None:
    env_code = "import asyncio, sys; from supervisor.cli import main; sys.exit(main(['migrate']))"
    env = {"DATABASE_URL": fresh_database, "PATH": "/usr/bin:/bin"}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", env_code, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    results = await asyncio.gather(*(p.communicate() for p in procs))
    assert [p.returncode for p in procs] == [0, 0], results
    outputs = sorted(out.decode().strip() for out, _ in results)
    # Exactly one of them applied everything; the other waited on the lock and found nothing to do.
    assert outputs[0] == "applied migrations: " + ", ".join(str(m.version) for m in migrations.discover())
    assert outputs[1] == "database is up to date"
    conn = await asyncpg.connect(fresh_database)
    try:
        count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        await conn.close()
    assert count == len(migrations.discover())


def test_bad_migration_name_is_rejected(tmp_path: object) -> None:
    from pathlib import Path

    directory = Path(str(tmp_path))
    (directory / "1_bad.sql").write_text("SELECT 1;")
    try:
        migrations.discover(directory)
    except ValueError as exc:
        assert "1_bad.sql" in str(exc)
    else:
        raise AssertionError("a badly named migration was accepted")


async def test_failed_migration_rolls_back(fresh_database: str, tmp_path: object) -> None:
    broken = [
        migrations.Migration(1, "ok", "CREATE TABLE t_ok (id int);"),
        migrations.Migration(2, "broken", "CREATE TABLE t_bad (id int); SELECT * FROM nope;"),
    ]
    conn = await connect_dedicated(fresh_database, application_name="t")
    try:
        try:
            await migrations.apply_all(conn, broken)
        except asyncpg.UndefinedTableError:
            pass
        else:
            raise AssertionError("broken migration applied")
        assert await conn.fetchval("SELECT to_regclass('t_bad')") is None
        assert await conn.fetchval("SELECT to_regclass('t_ok')") is not None
        assert await migrations.pending(conn, broken) == [2]
    finally:
        await conn.close()
