"""A loopback TCP proxy between one supervisor replica and the fake Telegram, which the driver can cut.

Every replica reaches Telegram through a link of its own (`TELEGRAM_API_BASE` points at the link), so:

* `cut("refuse")` resets every connection and every new one (Telegram unreachable, failing fast);
* `cut("blackhole")` drops the upstream side and leaves the replica's requests hanging unanswered
  (a network partition: the replica only learns through its own timeouts);
* `restore()` closes what was held and forwards again.

The link also records the local port of each upstream connection it opens in a shared `owners`
map (port -> replica name), so the fake Telegram's observer can tell which replica sent a request.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

CutMode = Literal["refuse", "blackhole"]
LinkState = Literal["up", "refuse", "blackhole"]
_CHUNK = 1 << 16


class TelegramLink:
    def __init__(self, name: str, upstream_port: int, owners: dict[int, str]) -> None:
        self.name = name
        self.upstream_port = upstream_port
        self.owners = owners
        self.state: LinkState = "up"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._upstreams: set[asyncio.StreamWriter] = set()
        self._held: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in [*self._clients, *self._upstreams]:
            writer.transport.abort()
        # The aborted connections end their handlers; cancelling one instead makes asyncio 3.11 print a
        # traceback for it (its server callback calls `task.exception()` on a cancelled task).
        tasks = list(self._tasks)
        if tasks:
            _, stragglers = await asyncio.wait(tasks, timeout=2)
            for task in stragglers:
                task.cancel()
            await asyncio.gather(*stragglers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
            self._server = None

    def cut(self, how: CutMode) -> None:
        self.state = how
        for upstream in list(self._upstreams):
            upstream.transport.abort()
        if how == "refuse":
            for client in list(self._clients):
                client.transport.abort()

    def restore(self) -> None:
        self.state = "up"
        for client in list(self._held):
            client.transport.abort()

    # --- connections -----------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._clients.add(writer)
        try:
            if self.state == "up":
                await self._forward(reader, writer)
            if self.state == "blackhole":
                await self._swallow(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            self._clients.discard(writer)
            self._held.discard(writer)
            if task is not None:
                self._tasks.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            return
        local = up_writer.get_extra_info("sockname")
        if isinstance(local, tuple):
            self.owners[int(local[1])] = self.name
        self._upstreams.add(up_writer)
        try:
            pumps = [asyncio.create_task(_pump(reader, up_writer)), asyncio.create_task(_pump(up_reader, writer))]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            up_writer.transport.abort()
            self._upstreams.discard(up_writer)

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read and drop whatever the replica sends until it gives up or the link is restored."""
        self._held.add(writer)
        while self.state == "blackhole" and await reader.read(_CHUNK):
            pass


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
