"""An alert as it goes out: the text for a chat and the JSON for a webhook, both redacted.

Every alert text is built from slugs, states and error messages that were redacted where they were
stored; it is redacted once more here, on its way out, with whatever secrets this process knows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.redact import REDACTOR
from supervisor.alerts.model import Event, Notice
from supervisor.alerts.texts import digest_text, notice_text, test_text

__all__ = ["AlertMessage", "digest_message", "notice_message", "test_message"]

TELEGRAM_TEXT_CHARS = 4000  # Telegram takes 4096 characters per message


@dataclass(frozen=True)
class AlertMessage:
    event: str  # alert, recovery, digest, test
    text: str
    payload: dict[str, object] = field(default_factory=dict)
    keys: tuple[str, ...] = ()


def _notice_json(notice: Notice) -> dict[str, object]:
    incident = notice.incident
    return {
        "key": incident.key,
        "kind": incident.kind.value,
        "subject": incident.subject,
        "detail": REDACTOR.redact(incident.detail),
        "state": "resolved" if notice.event is Event.RECOVERY else "open",
        "opened_at": notice.opened_at.isoformat(),
        "resolved_at": notice.resolved_at.isoformat() if notice.resolved_at else None,
    }


def notice_message(notice: Notice, language: str, sender: str) -> AlertMessage:
    text = REDACTOR.redact(notice_text(notice, language))[:TELEGRAM_TEXT_CHARS]
    payload = {"event": notice.event.value, "text": text, "sender": sender, **_notice_json(notice)}
    return AlertMessage(notice.event.value, text, payload, (notice.incident.key,))


def digest_message(notices: Sequence[Notice], language: str, sender: str) -> AlertMessage:
    text = REDACTOR.redact(digest_text(notices, language))[:TELEGRAM_TEXT_CHARS]
    payload: dict[str, object] = {
        "event": Event.DIGEST.value,
        "text": text,
        "sender": sender,
        "incidents": [{"event": n.event.value, **_notice_json(n)} for n in notices],
    }
    return AlertMessage(Event.DIGEST.value, text, payload, tuple(n.incident.key for n in notices))


def test_message(sender: str, language: str) -> AlertMessage:
    now = datetime.now(UTC)
    text = test_text(sender, language, now)
    return AlertMessage("test", text, {"event": "test", "text": text, "sender": sender, "at": now.isoformat()})
