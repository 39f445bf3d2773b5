"""Alert settings are validated at start (one line per problem, never the value) and every incident has
its words in ru and en."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.settings import SettingsError, load_settings, parse_chat_ids
from supervisor.alerts.channels import TelegramChat, Webhook, channels_from
from supervisor.alerts.message import digest_message, notice_message
from supervisor.alerts.model import Event, Incident, Kind, Notice
from supervisor.alerts.texts import TEXTS, digest_text

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq"
HOOK = "https://hooks.example.com/services/T000/B000/very-secret-part"


@given(st.lists(st.integers(min_value=-(10**15), max_value=10**15).filter(bool), min_size=1, max_size=20))
def test_chat_ids_round_trip(ids: list[int]) -> None:
    text = " , ".join(str(i) for i in ids)
    assert parse_chat_ids(text) == tuple(dict.fromkeys(ids))


@given(st.text(alphabet=string.printable, min_size=1, max_size=40))
def test_anything_else_is_refused_with_a_value_error(text: str) -> None:
    try:
        parsed = parse_chat_ids(text)
    except ValueError:
        return
    assert all(isinstance(i, int) and i != 0 for i in parsed)


@pytest.mark.parametrize("bad", ["0", "12,abc", "1,,2", "１２３", "+5", ",".join(str(i) for i in range(1, 23))])
def test_bad_chat_lists(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_chat_ids(bad)


def test_channels_need_both_halves_and_are_checked_without_echoing_secrets() -> None:
    with pytest.raises(SettingsError) as only_token:
        load_settings(platform_bot_token=TOKEN)
    assert only_token.value.lines == [
        "PLATFORM_BOT_TOKEN is set but OPERATOR_CHAT_IDS is not: alerts would reach nobody"
    ]
    with pytest.raises(SettingsError) as only_chats:
        load_settings(operator_chat_ids="111")
    assert "PLATFORM_BOT_TOKEN is not" in str(only_chats.value)
    bad_token = TOKEN[:-3]
    with pytest.raises(SettingsError) as shape:
        load_settings(
            platform_bot_token=bad_token, operator_chat_ids="111,abc", alert_webhook_url="ftp://x/" + bad_token
        )
    text = str(shape.value)
    assert {line.split(":")[0] for line in shape.value.lines} == {
        "invalid setting PLATFORM_BOT_TOKEN",
        "invalid setting OPERATOR_CHAT_IDS",
        "invalid setting ALERT_WEBHOOK_URL",
    }
    assert bad_token not in text and "ftp://" not in text
    with pytest.raises(SettingsError) as production:
        load_settings(
            env="production",
            master_keys="k" * 44,
            database_url="postgresql://u@h/db",
            alert_webhook_url="http://hooks.example.com/x",
        )
    assert "ALERT_WEBHOOK_URL must be https:// in production" in production.value.lines


def test_channels_from_settings() -> None:
    settings = load_settings(platform_bot_token=TOKEN, operator_chat_ids="111, -1002233", alert_webhook_url=HOOK)
    channels = channels_from(settings)
    assert [c.name for c in channels] == ["telegram:111", "telegram:-1002233", "webhook"]
    assert isinstance(channels[0], TelegramChat) and isinstance(channels[2], Webhook)
    assert channels_from(load_settings()) == []
    assert "very-secret-part" not in repr(settings) and TOKEN not in repr(settings)


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize("language", ["ru", "en"])
def test_every_kind_has_words_in_both_languages(kind: Kind, language: str) -> None:
    opened = datetime(2026, 1, 1, tzinfo=UTC)
    incident = Incident(kind, "photo-shop", "RuntimeError: boom")
    alert = notice_message(Notice(Event.ALERT, incident, opened), language, "sup-a")
    recovery = notice_message(
        Notice(Event.RECOVERY, incident, opened, opened + timedelta(minutes=12)), language, "sup-a"
    )
    named = kind is not Kind.LOCK_TABLE_FULL  # one table for the whole server: no subject to name
    assert alert.text.startswith("🔴 ") and "{" not in alert.text and ("photo-shop" in alert.text) == named
    assert recovery.text.startswith("🟢 ") and ("photo-shop" in recovery.text) == named and "12" in recovery.text
    assert set(TEXTS[kind]) == {"ru", "en"}
    cyrillic = any("а" <= ch <= "я" for ch in alert.text.lower())
    assert cyrillic == (language == "ru")


def test_a_digest_fits_one_telegram_message() -> None:
    opened = datetime(2026, 1, 1, tzinfo=UTC)
    notices = [Notice(Event.ALERT, Incident(Kind.BACKOFF, f"shop-{i:03d}", "x" * 200), opened) for i in range(200)]
    text = digest_text(notices, "ru")
    assert len(text) <= 4000 and text.endswith(")") and "(+" in text.splitlines()[-1]
    message = digest_message(notices, "en", "sup-a")
    assert len(message.text) <= 4000
    incidents = message.payload["incidents"]
    assert isinstance(incidents, list) and len(incidents) == 200, "the JSON carries every incident"


def test_a_token_in_a_detail_is_masked_in_text_and_json() -> None:
    incident = Incident(Kind.BACKOFF, "shop", f"TelegramServerError at /bot{TOKEN}/getMe")
    message = notice_message(Notice(Event.ALERT, incident, datetime.now(UTC)), "en", "sup-a")
    assert TOKEN not in message.text and TOKEN not in str(message.payload)
