"""The question a quiet process asks Telegram (`TelegramProbe`), against real servers on loopback.

Invariant: only a question that ran out its whole timeout, with nothing else answered meanwhile and
the event loop running, makes the process unable at once; a quick refusal or reset counts as one
failure, any answer (a 429, a 401) as an answer, and nothing the server sends escapes the probe.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from supervisor.telegram_probe import TelegramProbe
from tenant_runtime.telegram.reachability import PROBE_TIMEOUT_SECONDS, Reachability

TOKEN = "123456:probe-token-abcdefghijklmnopqrstuvw"


@contextlib.asynccontextmanager
async def _serve(handler: Callable[[web.Request], Awaitable[web.Response]]) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_question_left_unanswered_makes_the_process_unable(blackhole: str) -> None:
    reach = Reachability()
    probe = TelegramProbe(blackhole, reach, stalled_since=lambda _since: False)
    try:
        started = time.monotonic()
        await probe.ask(TOKEN)
        assert time.monotonic() - started >= PROBE_TIMEOUT_SECONDS - 0.2
        assert not reach.reachable
    finally:
        await probe.close()


async def test_a_loop_that_stood_still_gives_no_verdict(blackhole: str) -> None:
    reach = Reachability()
    probe = TelegramProbe(blackhole, reach, stalled_since=lambda _since: True)
    try:
        await probe.ask(TOKEN)
        assert reach.reachable  # one failure counted, no verdict
    finally:
        await probe.close()


async def test_a_quick_refusal_is_one_failure_not_a_verdict() -> None:
    reach = Reachability()
    probe = TelegramProbe(f"http://127.0.0.1:{_closed_port()}", reach, stalled_since=lambda _since: False)
    try:
        await probe.ask(TOKEN)
        assert reach.reachable
        await probe.ask(TOKEN)
        await probe.ask(TOKEN)
        assert not reach.reachable  # three in a row, as for any call
    finally:
        await probe.close()


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (
            429,
            '{"ok":false,"error_code":429,"description":"Too Many Requests","parameters":{"retry_after":30}}',
            "application/json",
        ),
        (401, '{"ok":false,"error_code":401,"description":"Unauthorized"}', "application/json"),
        (502, "<html><body>502 Bad Gateway</body></html>", "text/html"),
        (200, "\xff\xfe not json", "application/json"),
    ],
)
async def test_whatever_the_server_answers_nothing_escapes_and_no_verdict_is_drawn(
    status: int, body: str, content_type: str
) -> None:
    async def answer(_request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    async with _serve(answer) as base:
        reach = Reachability()
        probe = TelegramProbe(base, reach, stalled_since=lambda _since: False)
        try:
            started = time.monotonic()
            await probe.ask(TOKEN)  # never raises
            assert time.monotonic() - started < 2.0, "a 429 must not be slept on"
            assert reach.reachable
        finally:
            await probe.close()
