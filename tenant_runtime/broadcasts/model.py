"""A broadcast as stored: its states, its recipients' states, its audience, its content and progress."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from tenant_runtime.config import Language

__all__ = [
    "OPEN",
    "Audience",
    "Broadcast",
    "BroadcastStatus",
    "Content",
    "ContentKind",
    "Progress",
    "RecipientStatus",
]


class BroadcastStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"


OPEN = (BroadcastStatus.RUNNING, BroadcastStatus.PAUSED)


class RecipientStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed right before the call to Telegram
    SENT = "sent"
    FAILED = "failed"  # Telegram refused it (chat not found, bad request) or it kept failing
    BLOCKED = "blocked"  # the user blocked the bot: counted, marked, not retried
    UNKNOWN = "unknown"  # its sender died during the call: maybe delivered, never sent again


class Audience(StrEnum):
    ALL = "all"
    PAID = "paid"  # topped up at least once
    ACTIVE = "active"  # wrote or tapped in the last 30 days


class ContentKind(StrEnum):
    TEXT = "text"
    PHOTO = "photo"
    VIDEO = "video"


@dataclass(frozen=True)
class Content:
    """What every recipient gets: HTML text, or a photo or video (the admin's file id) with an HTML caption,
    and at most one URL button."""

    kind: ContentKind
    body: str | None
    file_id: str | None = None
    button_text: str | None = None
    button_url: str | None = None


@dataclass(frozen=True)
class Broadcast:
    id: int
    tenant_id: int
    status: BroadcastStatus
    audience: Audience
    content: Content
    total: int
    language: Language
    admin_chat_id: int
    progress_message_id: int | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Broadcast:
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            status=BroadcastStatus(row["status"]),
            audience=Audience(row["audience"]),
            content=Content(
                ContentKind(row["kind"]), row["body"], row["file_id"], row["button_text"], row["button_url"]
            ),
            total=row["total"],
            language=row["language"],
            admin_chat_id=row["admin_chat_id"],
            progress_message_id=row["progress_message_id"],
            created_at=row["created_at"],
            finished_at=row["finished_at"],
        )


@dataclass(frozen=True)
class Progress:
    total: int
    sent: int
    failed: int
    blocked: int
    unknown: int
    pending: int  # not sent yet (pending, or being sent right now)
    elapsed_s: float  # since the broadcast was created

    @property
    def rate(self) -> float:
        """Messages handled per second so far."""
        done = self.total - self.pending
        return done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        return self.pending / rate if rate > 0 else None
