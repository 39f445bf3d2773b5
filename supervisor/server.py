"""`python -m supervisor run`: bind the port first, then load the rest.

Importing aiogram alone takes about a second; Render (and the operator) should see `/health`
answer long before that. So only aiohttp is imported before listening, and the heavy modules are
imported in a worker thread while the event loop already serves requests.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
import sys

from aiohttp import web

from supervisor import __version__
from supervisor.http import ServerState, build_app

_DEFAULT_MAX_BODY = 512 * 1024


def _early_port() -> tuple[str, int]:
    raw = os.environ.get("PORT", "10000")
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        print(f"error: invalid setting PORT: {raw!r} is not a TCP port (1-65535)", file=sys.stderr)
        raise SystemExit(2)
    return os.environ.get("HOST", "0.0.0.0"), int(raw)


async def _main() -> int:
    host, port = _early_port()
    state = ServerState(
        instance=os.environ.get("INSTANCE_NAME") or f"{socket.gethostname()}-{os.getpid()}", version=__version__
    )
    max_body = int(os.environ.get("WEBHOOK_MAX_BODY_BYTES", _DEFAULT_MAX_BODY))
    # In-flight requests were drained by the supervisor already; the runner gets a short grace only.
    runner = web.AppRunner(
        build_app(state, max_body=max_body), access_log=None, handle_signals=False, shutdown_timeout=3
    )
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    try:
        app = await asyncio.to_thread(importlib.import_module, "supervisor.app")
        return int(await app.serve(state, host=host, port=port))
    finally:
        await runner.cleanup()


def run_server() -> int:
    return asyncio.run(_main())
