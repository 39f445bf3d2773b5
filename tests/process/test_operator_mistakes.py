"""Careless operators, through real processes (issue 15, items 18, 19 and 20): every settings problem
at once, a warning for production without PUBLIC_BASE_URL, and the embedded Postgres stopped by a
clean exit even after an earlier process was killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from sandbox.stack import ROOT, free_port
from shared.crypto import generate_key
from tests.helpers import wait_until

pytestmark = pytest.mark.slow


def _env(**values: str) -> dict[str, str]:
    """The parent's environment without any setting of ours, plus `values`."""
    ours = {
        "DATABASE_URL", "MASTER_KEYS", "PUBLIC_BASE_URL", "ENV", "RENDER", "DATA_DIR", "PORT", "METRICS_TOKEN",
        "OPERATOR_TOKEN", "BOT_MODE", "LOG_FORMAT", "CURRENCY_CODE", "WEBHOOK_MAX_BODY_BYTES",
    }  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ours}
    env.update({"PYTHONPATH": str(ROOT), **values})
    return env


async def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_a_bad_port_does_not_hide_the_other_settings_problems(tmp_path: Path) -> None:
    # `run` checks PORT before anything else, to listen at once; it used to stop at that one line.
    code, output = await _run(
        ["-m", "supervisor", "run"],
        _env(PORT="abc", ENV="production", CURRENCY_CODE="XYZ", WEBHOOK_MAX_BODY_BYTES="1e6"),
        tmp_path,
    )
    assert code == 2
    lines = output.strip().splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "invalid setting PORT",
        "invalid setting CURRENCY_CODE",
        "invalid setting WEBHOOK_MAX_BODY_BYTES",
        "MASTER_KEYS is required in production (a generated key would be lost)",
        "DATABASE_URL is required in production",
    ], output
    assert all(line.startswith("error: ") for line in lines) and "Traceback" not in output


async def test_production_without_a_public_url_says_so_once(tmp_path: Path, module_database: str) -> None:
    port = free_port()
    env = _env(
        PORT=str(port),
        HOST="127.0.0.1",
        ENV="production",
        DATABASE_URL=module_database,
        MASTER_KEYS=generate_key(),
        METRICS_TOKEN=generate_key(),
    )
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "supervisor", "run", cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    async def booted() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return "tenants" in (await client.get(f"http://127.0.0.1:{port}/health")).json()
        except httpx.HTTPError:
            return False

    try:
        await wait_until(booted, timeout=60, interval=0.2, what="/health with tenants")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=30)
    assert code == 0
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    about_polling = [r for r in records if "PUBLIC_BASE_URL" in r["event"]]
    assert len(about_polling) == 1, about_polling
    assert about_polling[0]["level"] == "warning"
    assert "polling mode" in about_polling[0]["event"] and "hidden" in about_polling[0]["event"]
    assert not [r for r in records if "METRICS_TOKEN" in r["event"]], "set here, so no warning about it"


def _postmaster(pgdata: Path) -> int | None:
    """The server's PID while it runs (first line of postmaster.pid), else None."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if psutil.pid_exists(pid) else None


async def test_embedded_postgres_is_stopped_by_a_clean_exit_after_a_kill(tmp_path: Path) -> None:
    pgdata = tmp_path / "pg"
    starter = (
        "import sys, time; from pathlib import Path; from shared.db import start_embedded; "
        "print(start_embedded(Path(sys.argv[1])), flush=True); time.sleep(float(sys.argv[2]))"
    )
    env = _env()
    killed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", starter, str(tmp_path), "600", cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert killed.stdout is not None
        uri = await asyncio.wait_for(killed.stdout.readline(), timeout=120)
        assert uri.startswith(b"postgresql://"), uri
        server = _postmaster(pgdata)
        assert server is not None
        killed.kill()  # SIGKILL: no atexit, its PID stays in the wheel's list
        await killed.wait()

        code, output = await _run(["-c", starter, str(tmp_path), "0"], env, ROOT, timeout=120)
        assert code == 0, output
        # The clean exit was the last user of the server: it must have stopped it (pg_ctl -w waits).
        await wait_until(lambda: _postmaster(pgdata) is None, timeout=30, what="the embedded server to stop")
    finally:
        if killed.returncode is None:
            killed.kill()
            await killed.wait()
        leftover = _postmaster(pgdata)
        if leftover is not None:  # the old behaviour: do not leave a server running after the test
            psutil.Process(leftover).terminate()
