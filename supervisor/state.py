"""What the HTTP server knows about the process: who it is, how far boot got, and the backend once
booted. Imports nothing heavy, so the early responder can use it before aiohttp is loaded."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from supervisor.http import Routes


@dataclass
class ServerState:
    instance: str
    version: str
    started_at: float = field(default_factory=time.time)
    db_status: str = "connecting"
    migrations_applied: bool = False
    backend: Routes | None = None
    warnings: list[str] = field(default_factory=list)  # settings that work but cost something
    on_stop: list[Callable[[], None]] = field(default_factory=list)  # called on SIGTERM/SIGINT, before shutdown
    # Set on SIGTERM/SIGINT: from then on new Telegram updates are refused with 503 (redelivered to the
    # other replica, or to this service once it is back) while what is in flight drains; /ready says 503.
    stopping: bool = False

    def health(self) -> dict[str, object]:
        body: dict[str, object] = {
            "status": "ok",
            "instance": self.instance,
            "version": self.version,
            "uptime_s": round(time.time() - self.started_at, 3),
            "db": self.db_status,
            "migrations_applied": self.migrations_applied,
        }
        if self.warnings:
            body["warnings"] = self.warnings
        if self.backend is not None:
            body.update(self.backend.health())
        else:
            body["phase"] = "starting"
        if self.stopping:
            body["phase"] = "stopping"
        return body

    @property
    def ready(self) -> bool:
        return self.db_status == "ok" and self.migrations_applied and self.backend is not None and not self.stopping
