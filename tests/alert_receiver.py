"""A webhook receiver on 127.0.0.1 for alert tests: keeps every JSON body, can refuse on demand."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class AlertReceiver:
    bodies: list[dict[str, object]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    fail_with: int | None = None  # answer this status (and keep nothing) while set
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> AlertReceiver:
        app = web.Application()
        app.router.add_post("/hooks/{secret}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        # The path carries a secret, as a chat-ops webhook URL does: tests check it never leaks.
        self.url = f"http://127.0.0.1:{port}/hooks/hook-secret-{id(self):x}xyzw"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        if self.fail_with is not None:
            return web.Response(status=self.fail_with)
        text = await request.text()
        self.raw.append(text)
        self.bodies.append(json.loads(text))
        return web.json_response({"ok": True})

    def events(self, event: str | None = None) -> list[dict[str, object]]:
        return [b for b in self.bodies if event is None or b.get("event") == event]
