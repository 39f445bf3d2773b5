"""Answers `/health` from the first tenth of a second, while aiohttp itself is still being imported.

Render and operators probe `/health` right after the process starts, and importing aiohttp alone
takes ~0.2 s. This responder needs only asyncio. It answers `GET /health` (200, phase "starting"),
`/ready` with 503, and everything else with 503 so Telegram redelivers; each connection is closed after
one reply. It steps aside once aiohttp accepts on the same listening socket.
"""

from __future__ import annotations

import asyncio
import json
import socket

from supervisor.state import ServerState

MAX_HEAD_BYTES = 16 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}


class EarlyResponder(asyncio.Protocol):
    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._head = bytearray()
        self._transport: asyncio.Transport | None = None
        self._answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return
        self._head += data
        if b"\r\n\r\n" not in self._head:
            if len(self._head) > MAX_HEAD_BYTES:
                self._reply(431, {"ok": False, "error": "request head too large"})
            return
        request_line = bytes(self._head.split(b"\r\n", 1)[0]).decode("latin-1").split(" ")
        if len(request_line) != 3:
            self._reply(400, {"ok": False, "error": "bad request"})
            return
        method, target, _version = request_line
        path = target.split("?", 1)[0]
        if path == "/health" and method in ("GET", "HEAD"):
            self._reply(200, self._state.health(), body=method == "GET")
        elif path == "/ready":
            self._reply(503, {"ready": False, "db": self._state.db_status})
        else:
            self._reply(503, {"ok": False, "error": "starting"})

    def _reply(self, status: int, payload: dict[str, object], *, body: bool = True) -> None:
        self._answered = True
        content = json.dumps(payload, ensure_ascii=False).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(content)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        assert self._transport is not None
        self._transport.write(head + content if body else head)
        self._transport.close()


async def serve_early(state: ServerState, listener: socket.socket) -> asyncio.Server:
    """Serve on a duplicate of `listener`: closing this server later leaves the socket itself listening."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: EarlyResponder(state), sock=listener.dup())
