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

from supervisor import __version__
from supervisor.early import serve_early
from supervisor.state import ServerState

_DEFAULT_MAX_BODY = 512 * 1024


def _early_port() -> tuple[str, int]:
    raw = os.environ.get("PORT", "10000")
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        print(f"error: invalid setting PORT: {raw!r} is not a TCP port (1-65535)", file=sys.stderr)
        raise SystemExit(2)
    return os.environ.get("HOST", "0.0.0.0"), int(raw)


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


async def _main(host: str, port: int, listener: socket.socket) -> int:
    state = ServerState(
        instance=os.environ.get("INSTANCE_NAME") or f"{socket.gethostname()}-{os.getpid()}", version=__version__
    )
    early = await serve_early(state, listener)
    http = await asyncio.to_thread(importlib.import_module, "supervisor.http")
    from aiohttp import web  # already imported by supervisor.http

    max_body = int(os.environ.get("WEBHOOK_MAX_BODY_BYTES", _DEFAULT_MAX_BODY))
    # In-flight requests were drained by the supervisor already; the runner gets a short grace only.
    runner = web.AppRunner(
        http.build_app(state, max_body=max_body), access_log=None, handle_signals=False, shutdown_timeout=3
    )
    await runner.setup()
    await web.SockSite(runner, listener).start()
    early.close()  # aiohttp accepts on the listening socket from here on
    try:
        app = await asyncio.to_thread(importlib.import_module, "supervisor.app")
        return int(await app.serve(state, host=host, port=port))
    finally:
        await runner.cleanup()


def run_server() -> int:
    host, port = _early_port()
    return asyncio.run(_main(host, port, _listen(host, port)))
