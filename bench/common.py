"""What every figure shares: result rows, fresh databases, the stack of fakes, supervisor launches.

A figure is an async function taking a `Bench` and returning a `FigureResult`: rows for the table
(value, target, PASS/MISS) and free-form details for results.json.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import psutil

from sandbox.stack import DemoTenant, Stack, SupervisorProcess, free_port
from sandbox.telegram.server import FakeTelegram
from shared import migrations
from shared.db import connect_dedicated

PASS, MISS, INFO, ERROR = "PASS", "MISS", "INFO", "ERROR"
DEFAULT_POOL_SIZE = 10  # Settings.db_pool_size default (DB_POOL_SIZE)


# --- results ------------------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    key: str
    label: str
    value: float | None
    unit: str
    target: str
    status: str
    note: str = ""

    def shown_value(self) -> str:
        if self.value is None:
            return "—"
        if self.unit in ("", "x") and float(self.value).is_integer():
            text = str(int(self.value))
        elif abs(self.value) >= 100:
            text = f"{self.value:.0f}"
        elif abs(self.value) >= 10:
            text = f"{self.value:.1f}"
        else:
            text = f"{self.value:.3g}"
        return f"{text} {self.unit}".strip()


@dataclass
class FigureResult:
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"rows": [asdict(r) for r in self.rows], "details": self.details}


def at_most(value: float | None, limit: float) -> str:
    return MISS if value is None or value > limit else PASS


def at_least(value: float | None, limit: float) -> str:
    return MISS if value is None or value < limit else PASS


# --- statistics ---------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


# --- machine ------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import aiogram
    import aiohttp as aiohttp_module

    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "aiogram": aiogram.__version__,
        "aiohttp": aiohttp_module.__version__,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# --- the bench run ------------------------------------------------------------------------------------


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def server_dsn() -> str:
    """The Postgres server: DATABASE_URL's server (its `postgres` database), else 127.0.0.1:5432."""
    url = os.environ.get("BENCH_PG_SERVER_DSN") or os.environ.get("DATABASE_URL")
    if url:
        return with_database(url, "postgres")
    return "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class Bench:
    """One `python -m bench` run: options, its databases (dropped at the end) and shared samples."""

    quick: bool
    workdir: Path
    server_dsn: str
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    databases: list[str] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)
    profile: bool = False
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))

    async def database(self, label: str) -> str:
        """A fresh migrated database, bench_<run>_<label>."""
        name = f"bench_{self.run_id}_{label}"
        conn = await asyncpg.connect(self.server_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.databases.append(name)
        dsn = with_database(self.server_dsn, name)
        mconn = await connect_dedicated(dsn, application_name="bench-migrate")
        try:
            await migrations.apply_all(mconn)
        finally:
            await mconn.close()
        return dsn

    async def drop_databases(self) -> None:
        conn = await asyncpg.connect(self.server_dsn)
        try:
            for name in self.databases:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        self.databases.clear()

    @asynccontextmanager
    async def stack(self, label: str, *, history_limit: int | None = 5000, **kwargs: Any) -> AsyncIterator[BenchStack]:
        dsn = await self.database(label)
        workdir = self.workdir / label
        stack = BenchStack(dsn, workdir, history_limit=history_limit, **kwargs)
        await stack.start()
        try:
            yield stack
        finally:
            await stack.stop()


@contextmanager
def deferred_redactor() -> Iterator[None]:
    """Batch this (bench) process's secret registrations into one regex compile.

    Registering a secret recompiles one alternation of every secret known so far, so adding or
    reading 1,000 tenants costs minutes here (see the start figure's finding). Only the bench's own
    setup runs under this; the supervisor processes being measured are untouched.
    """
    from shared.redact import REDACTOR

    pending: list[str | None] = []
    original = REDACTOR.register
    setattr(REDACTOR, "register", lambda *found: pending.extend(found))  # noqa: B010 - shadow the method
    try:
        yield
    finally:
        delattr(REDACTOR, "register")
        original(*pending)


@dataclass
class BenchStack(Stack):
    """The test harness's stack, with a bounded fake Telegram memory for long runs."""

    history_limit: int | None = None

    async def start(self) -> None:
        await super().start()
        # Stack builds its FakeTelegram without a history limit; swap in a bounded one before any use.
        await self.telegram.stop()
        self.telegram = FakeTelegram(webhook_retry_initial=0.1, webhook_retry_max=1.0, history_limit=self.history_limit)
        await self.telegram.start()

    async def add_tenants_direct(self, prefix: str, count: int, *, credits: float = 10_000) -> list[DemoTenant]:
        with deferred_redactor():
            return await super().add_tenants_direct(prefix, count, credits=credits)


# --- supervisor processes -----------------------------------------------------------------------------


@dataclass
class Launched:
    sup: SupervisorProcess
    started: float  # time.perf_counter() just before the process was spawned

    @property
    def pid(self) -> int:
        return int(self.sup.proc.pid)


async def launch(stack: Stack, name: str, *, port: int | None = None, **extra: str) -> Launched:
    """Spawn `python -m supervisor run` in webhook mode (production defaults otherwise) without waiting.

    Unlike Stack.start_supervisor, this returns at once so the caller can time the boot from the spawn.
    """
    port = port or free_port()
    env = stack.env(PORT=str(port), HOST="127.0.0.1", INSTANCE_NAME=name, BOT_MODE="webhook", **extra)
    env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    sup = await stack.spawn(name, port, ["supervisor", "run"], env=env)
    return Launched(sup, started)


async def stop(sup: SupervisorProcess, sig: int = signal.SIGTERM, timeout: float = 40) -> float:
    """Signal and wait (SIGKILL after `timeout`); returns seconds until exit."""
    started = time.perf_counter()
    if sup.proc.returncode is None:
        sup.proc.send_signal(sig)
        try:
            await asyncio.wait_for(sup.proc.wait(), timeout=timeout)
        except TimeoutError:
            sup.proc.kill()
            await sup.proc.wait()
    return time.perf_counter() - started


def by_state(health: Mapping[str, Any] | None, state: str) -> int:
    tenants = (health or {}).get("tenants")
    states = tenants.get("by_state", {}) if isinstance(tenants, dict) else {}
    return int(states.get(state, 0)) if isinstance(states, dict) else 0


def locks_held(health: Mapping[str, Any] | None) -> int:
    return int((health or {}).get("locks_held", 0) or 0)


async def get_json(
    session: aiohttp.ClientSession, url: str, headers: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """The JSON object `url` answers with 200, else None (no answer, another status, not an object)."""
    try:
        async with session.get(url, headers=headers) as response:
            if response.status != 200:
                return None
            body = await response.json()
            return body if isinstance(body, dict) else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


class Prober:
    """Polls /health over one keep-alive client (cheaper and steadier than a client per probe)."""

    def __init__(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3))

    async def close(self) -> None:
        await self._session.close()

    async def health(self, port: int) -> dict[str, Any] | None:
        return await get_json(self._session, f"http://127.0.0.1:{port}/health")

    async def seconds_until(
        self,
        launched: Launched,
        check: Callable[[dict[str, Any]], bool],
        *,
        timeout: float,
        interval: float = 0.02,
        what: str = "condition",
        on_poll: Callable[[], Awaitable[None]] | None = None,
    ) -> float:
        """Seconds from the spawn until /health satisfies `check`; raises TimeoutError after `timeout`."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if launched.sup.proc.returncode is not None:
                raise RuntimeError(f"{launched.sup.name} exited with {launched.sup.proc.returncode}: {tail(launched)}")
            body = await self.health(launched.sup.port)
            if body is not None and check(body):
                return time.perf_counter() - launched.started
            if on_poll is not None:
                await on_poll()
            await asyncio.sleep(interval)
        raise TimeoutError(f"{launched.sup.name}: {what} not reached within {timeout}s: {tail(launched)}")


async def until_active(launched: Launched, count: int, *, timeout: float = 120) -> float:
    """Seconds from the spawn until the process serves `count` tenants (its /health says so)."""
    prober = Prober()
    try:
        return await prober.seconds_until(
            launched, lambda h: by_state(h, "active") >= count, timeout=timeout, what=f"{count} tenants active"
        )
    finally:
        await prober.close()


def tail(launched: Launched, size: int = 1500) -> str:
    return launched.sup.log()[-size:]


def rss_bytes(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


async def connections(pool: asyncpg.Pool, instance: str) -> int:
    """Postgres sessions of one supervisor (pool, locker, listener), by application_name suffix."""
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE $1",
            f"%:{instance}.%",  # <prefix>:<instance>.<per-start suffix>
        )
    )


async def webhook_secrets(stack: Stack) -> dict[str, str]:
    """slug -> webhook secret, read through the registry code like the webhook test does."""
    from shared.crypto import KeyRing
    from shared.db import create_pool
    from supervisor.tenants import TenantStore

    pool = await create_pool(stack.database_url, 2, application_name="bench-secrets")
    try:
        with deferred_redactor():
            configs = await TenantStore(pool, KeyRing([stack.master_key])).all()
    finally:
        await pool.close()
    return {c.slug: c.webhook_secret for c in configs}


# --- profiling ----------------------------------------------------------------------------------------


class Profiler:
    """`py-spy record` on a pid for a bounded time; a no-op when py-spy is missing or not allowed.

    Blocking mode (the process is paused for each of 100 samples a second): slower, but whole stacks.
    """

    def __init__(self, pid: int, out: Path, *, seconds: float) -> None:
        self.pid = pid
        self.out = out
        self.seconds = seconds
        self._proc: asyncio.subprocess.Process | None = None
        self.error: str | None = None

    async def __aenter__(self) -> Profiler:
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(exe).exists():
            self.error = "py-spy not installed (pip install py-spy)"
            return self
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._proc = await asyncio.create_subprocess_exec(
            exe,
            "record",
            "--pid",
            str(self.pid),
            "--duration",
            str(max(1, math.ceil(self.seconds))),
            "--rate",
            "100",
            "--format",
            "raw",
            "--output",
            str(self.out),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        await asyncio.sleep(0.5)  # let it attach
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        if self._proc.returncode is None:
            self._proc.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
        try:
            _, err = await asyncio.wait_for(self._proc.communicate(), timeout=30)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
            err = b"timeout"
        if not self.out.exists():
            self.error = err.decode(errors="replace")[-500:] or "py-spy wrote nothing"

    def summary(self, top: int = 15) -> dict[str, Any]:
        """Shares of busy samples from py-spy's collapsed stacks: by own frame, and inclusive for our code.

        Idle samples (a thread waiting on its queue, the loop waiting in select) are left out.
        """
        if self.error is not None or not self.out.exists():
            return {"error": self.error or "no profile"}
        inclusive: dict[str, int] = {}
        own: dict[str, int] = {}
        busy = idle = 0
        for line in self.out.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            frames = [f.strip() for f in stack.split(";") if f.strip()]
            if not count_text.isdigit() or not frames:
                continue
            count = int(count_text)
            if any(marker in frames[-1] for marker in _IDLE_LEAVES):
                idle += count
                continue
            busy += count
            leaf = _function(frames[-1])
            own[leaf] = own.get(leaf, 0) + count
            for frame in {_function(f) for f in frames}:
                if frame.split(" (", 1)[-1].startswith(_OUR_PACKAGES):
                    inclusive[frame] = inclusive.get(frame, 0) + count

        def top_of(counts: dict[str, int]) -> list[list[Any]]:
            ranked = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[:top]
            return [[round(100 * n / max(busy, 1), 1), frame] for frame, n in ranked]

        return {
            "busy_samples": busy,
            "idle_samples": idle,
            "file": str(self.out),
            "own_pct": top_of(own),
            "our_code_inclusive_pct": top_of(inclusive),
        }


def _function(frame: str) -> str:
    """`name (path.py:123)` -> `name (path.py)`: samples of one function, whatever the line."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


_IDLE_LEAVES = ("concurrent/futures/thread.py:81", "EpollSelector.select", "Condition.wait", "_wait_for_tstate_lock")
_OUR_PACKAGES = ("supervisor/", "tenant_runtime/", "shared/")


def dump_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
