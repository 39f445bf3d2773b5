"""Once the process is stopping, Telegram updates are refused with 503 (the other replica, or Telegram's
redelivery, takes them), never 404 as the tenants leave the process; what is in flight elsewhere goes on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from supervisor.http import Routes, build_app, json_response
from supervisor.state import ServerState


async def _ok(_request: web.Request) -> web.StreamResponse:
    return json_response({"ok": True, "served": "backend"})


@pytest.fixture
async def served() -> AsyncIterator[tuple[ServerState, str]]:
    state = ServerState(instance="stopping-test", version="test", db_status="ok", migrations_applied=True)
    state.backend = Routes(
        health=lambda: {"phase": "serving"},
        webhook=_ok,
        kie_callback=_ok,
        media=_ok,
        metrics=_ok,
        status=_ok,
        status_json=_ok,
    )
    runner = web.AppRunner(build_app(state, max_body=1024), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield state, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_webhooks_are_refused_with_503_once_stopping_and_the_rest_still_answers(
    served: tuple[ServerState, str],
) -> None:
    state, base = served
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as client:
        async with client.post(f"{base}/webhook/shop", data=b"{}") as response:
            assert response.status == 200  # serving: the backend answers
        async with client.get(f"{base}/ready") as response:
            assert response.status == 200

        state.stopping = True
        async with client.post(f"{base}/webhook/shop", data=b"{}") as response:
            assert response.status == 503
            assert await response.json() == {"ok": False, "error": "stopping"}
        async with client.get(f"{base}/ready") as response:
            assert response.status == 503  # a load balancer that reads /ready stops sending here
        async with client.get(f"{base}/health") as response:
            assert response.status == 200 and (await response.json())["phase"] == "stopping"
        # A KIE callback or a media fetch for a job still running here is answered as before.
        async with client.post(f"{base}/kie/callback/shop/t0ken") as response:
            assert response.status == 200 and (await response.json())["served"] == "backend"
        async with client.get(f"{base}/media/shop/t0ken") as response:
            assert response.status == 200
