"""The responder that answers while aiohttp is still importing, and the handover to aiohttp on one socket."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from sandbox.stack import ROOT
from supervisor.early import MAX_HEAD_BYTES, serve_early
from supervisor.http import build_app
from supervisor.state import ServerState


@pytest.fixture
async def listener() -> AsyncIterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


async def _exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=5)  # the responder closes after one reply
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    return int(status_line.split(" ")[1]), headers, body


async def test_answers_health_and_refuses_the_rest_while_starting(listener: socket.socket) -> None:
    state = ServerState(instance="early-test", version="test")
    server = await serve_early(state, listener)
    port = listener.getsockname()[1]
    try:
        status, headers, body = await _exchange(port, b"GET /health?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        health = json.loads(body)
        assert status == 200 and headers["connection"] == "close"
        assert int(headers["content-length"]) == len(body)
        assert health["phase"] == "starting" and health["instance"] == "early-test" and health["db"] == "connecting"

        status, headers, body = await _exchange(port, b"HEAD /health HTTP/1.1\r\n\r\n")
        assert status == 200 and body == b"" and int(headers["content-length"]) > 0

        status, _, body = await _exchange(port, b"GET /ready HTTP/1.1\r\n\r\n")
        assert status == 503 and json.loads(body) == {"ready": False, "db": "connecting"}

        update = json.dumps({"update_id": 1}).encode()
        webhook = b"POST /webhook/shop HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(update), update)
        status, _, body = await _exchange(port, webhook)
        assert status == 503 and json.loads(body) == {"ok": False, "error": "starting"}

        status, _, _ = await _exchange(port, b"NONSENSE\r\n\r\n")
        assert status == 400
        status, _, _ = await _exchange(port, b"GET /health HTTP/1.1\r\nX-Long: " + b"a" * MAX_HEAD_BYTES)
        assert status == 431
    finally:
        server.close()


async def test_aiohttp_takes_over_the_same_socket(listener: socket.socket) -> None:
    state = ServerState(instance="early-test", version="test")
    early = await serve_early(state, listener)
    port = listener.getsockname()[1]
    status, _, _ = await _exchange(port, b"GET /health HTTP/1.1\r\n\r\n")
    assert status == 200
    runner = web.AppRunner(build_app(state, max_body=1024), access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, listener).start()
    early.close()
    try:
        # aiohttp, not the early responder, answers now: it keeps the connection open unless asked.
        for _ in range(3):
            status, headers, body = await _exchange(
                port, b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            )
            assert status == 200 and json.loads(body)["phase"] == "starting"
            assert "aiohttp" in headers.get("server", "").lower()
        status, _, _ = await _exchange(
            port, b"POST /webhook/shop HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        assert status == 503
    finally:
        await runner.cleanup()


async def test_port_in_use_is_one_clear_line(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "supervisor",
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 2
    assert lines == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"], err.decode()
    assert out == b""
