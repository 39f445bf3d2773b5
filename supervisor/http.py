"""The one HTTP server every tenant shares: health, readiness, Telegram webhooks, KIE callbacks.

This module imports only aiohttp, so it serves within a fraction of a second of process start, long
before aiogram and the database are loaded (`supervisor.early` answers before even that). Everything
that needs them is reached through `Routes`, which the supervisor plugs in once it has booted; until
then `/health` answers 200 ("starting") and webhooks answer 503, which makes Telegram redeliver later.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from supervisor.state import ServerState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Routes:
    """What the supervisor plugs into the server once it has booted."""

    health: Callable[[], dict[str, object]]
    webhook: Handler
    kie_callback: Handler
    media: Handler
    metrics: Handler
    status: Handler
    status_json: Handler
    broadcasts: Handler | None = None
    broadcasts_json: Handler | None = None
    stats: Handler | None = None
    stats_json: Handler | None = None


def json_response(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def error_response(status: int, message: str) -> web.Response:
    return json_response({"ok": False, "error": message}, status=status)


def build_app(state: ServerState, *, max_body: int) -> web.Application:
    # aiohttp refuses bodies above client_max_size with 413 when they are read.
    app = web.Application(client_max_size=max_body)

    async def health(_request: web.Request) -> web.Response:
        # Always 200: one tenant's bad token must not make Render restart every bot.
        return json_response(state.health())

    async def ready(_request: web.Request) -> web.Response:
        return json_response({"ready": state.ready, "db": state.db_status}, status=200 if state.ready else 503)

    def late(name: str, *, while_stopping: bool = True) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            if state.backend is None:
                return error_response(503, "starting")
            if state.stopping and not while_stopping:
                # Not 404 once the tenants are gone from this process: the update is for the other replica.
                return error_response(503, "stopping")
            method: Handler | None = getattr(state.backend, name)
            if method is None:
                return error_response(404, "not found")
            return await method(request)

        return handler

    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_post("/webhook/{slug}", late("webhook", while_stopping=False))
    app.router.add_post("/kie/callback/{slug}/{token}", late("kie_callback"))
    app.router.add_get("/media/{slug}/{token}", late("media"))
    app.router.add_get("/metrics", late("metrics"))
    app.router.add_get("/status", late("status"))
    app.router.add_post("/status", late("status"))
    app.router.add_get("/status.json", late("status_json"))
    app.router.add_get("/status/broadcasts", late("broadcasts"))
    app.router.add_get("/status/stats", late("stats"))
    app.router.add_get("/status/stats.json", late("stats_json"))
    app.router.add_get("/status/broadcasts.json", late("broadcasts_json"))
    return app
