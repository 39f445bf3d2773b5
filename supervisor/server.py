"""`python -m supervisor run`: listen first, then load the rest.

Importing aiogram takes about a second and aiohttp a fifth of one; Render (and the operator) should
see `/health` answer long before either. So the port is bound with the standard library alone and
`supervisor.early` answers on it while aiohttp is imported in a worker thread; aiohttp then takes
over the same socket and the heavy modules load in another worker thread while it serves.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
import sys
from dataclasses import dataclass

from shared import strict
from supervisor import __version__
from supervisor.early import serve_early
from supervisor.state import ServerState
from supervisor.workers import LIFELINE_FD_ENV, LISTEN_FD_ENV, Workers, parse_workers, watch_parent

_DEFAULT_MAX_BODY = 512 * 1024
WORKER_DRAIN_SECONDS = 25.0  # inside Render's 30 s between SIGTERM and SIGKILL


@dataclass(frozen=True)
class EarlySettings:
    host: str
    port: int
    max_body: int
    workers: int


def _early_settings() -> EarlySettings:
    """HOST, PORT, the body limit and WORKERS, read before the settings (pydantic is not loaded yet)."""
    raw_port = os.environ.get("PORT", "10000")
    raw_body = os.environ.get("WEBHOOK_MAX_BODY_BYTES", str(_DEFAULT_MAX_BODY))
    raw_workers = os.environ.get("WORKERS")
    port = strict.uint(raw_port, max_digits=5)
    max_body = strict.uint(raw_body, max_digits=12)
    workers = parse_workers(raw_workers)
    problems = []
    if port is None or not 1 <= port <= 65535:
        problems.append(f"invalid setting PORT: {raw_port!r} is not a TCP port (1-65535)")
    if max_body is None or max_body < 1024:
        problems.append(f"invalid setting WEBHOOK_MAX_BODY_BYTES: {raw_body!r} is not a number of bytes >= 1024")
    if workers is None:
        problems.append(f"invalid setting WORKERS: {raw_workers!r} is not 'auto' or a number of processes (1-64)")
    if problems or port is None or max_body is None or workers is None:
        # Every settings problem at once, not only these (slower, but only on the way out).
        from supervisor.bootstrap import settings_or_report

        if settings_or_report(announce=False) is not None:
            for line in problems:
                print(f"error: {line}", file=sys.stderr)
        raise SystemExit(2)
    return EarlySettings(os.environ.get("HOST", "0.0.0.0"), port, max_body, workers)


def _listen(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family, backlog=1024)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        print(f"error: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        raise SystemExit(2) from None
    listener.setblocking(False)
    return listener


async def _main(early_settings: EarlySettings, listener: socket.socket, workers: Workers | None) -> int:
    state = ServerState(instance=_instance_name(), version=__version__)
    early = await serve_early(state, listener)
    background: list[asyncio.Task[None]] = []
    if workers is not None:
        state.on_stop.append(workers.stop)
        background.append(asyncio.create_task(workers.keep(), name="workers"))
    if LIFELINE_FD_ENV in os.environ:
        watch_parent(int(os.environ[LIFELINE_FD_ENV]))
    http = await asyncio.to_thread(importlib.import_module, "supervisor.http")
    from aiohttp import web  # already imported by supervisor.http

    # In-flight requests were drained by the supervisor already; the runner gets a short grace only.
    runner = web.AppRunner(
        http.build_app(state, max_body=early_settings.max_body),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=3,
    )
    await runner.setup()
    await web.SockSite(runner, listener).start()
    early.close()  # aiohttp accepts on the listening socket from here on
    try:
        app = await asyncio.to_thread(importlib.import_module, "supervisor.app")
        return int(await app.serve(state, host=early_settings.host, port=early_settings.port))
    finally:
        if workers is not None:
            await workers.wait(timeout=WORKER_DRAIN_SECONDS)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await runner.cleanup()


def _instance_name() -> str:
    return os.environ.get("INSTANCE_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def run_server() -> int:
    settings = _early_settings()
    inherited = os.environ.get(LISTEN_FD_ENV)
    if inherited is not None:
        # A worker: the first process bound the port and passed the socket on.
        listener = socket.socket(fileno=int(inherited))
        listener.setblocking(False)
        return asyncio.run(_main(settings, listener, None))
    listener = _listen(settings.host, settings.port)
    workers = None
    if settings.workers > 1:
        base = _instance_name()
        os.environ["INSTANCE_NAME"] = f"{base}-w0"
        workers = Workers(listener, settings.workers, base)
    return asyncio.run(_main(settings, listener, workers))
