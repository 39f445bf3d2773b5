"""What an admin may broadcast (issue 17, item 4): Telegram's limits for bots, the URL button, and the pacing
that keeps a bot's calls under its limit with replies first."""

from __future__ import annotations

import datetime

import pytest
from aiogram.types import Chat, Message, MessageEntity, PhotoSize, Sticker, User, Video
from hypothesis import given
from hypothesis import strategies as st

from tenant_runtime.broadcasts.content import (
    MAX_BUTTON_TEXT,
    MAX_CAPTION,
    MAX_TEXT,
    ContentError,
    ContentProblem,
    content_of,
    parse_button,
    telegram_length,
)
from tenant_runtime.broadcasts.model import ContentKind, Progress
from tenant_runtime.telegram.traffic import BulkPacer, RecentCalls

CHAT = Chat(id=1, type="private")
ADMIN = User(id=1, is_bot=False, first_name="A")


def _message(**fields: object) -> Message:
    return Message(message_id=1, date=datetime.datetime.now(datetime.UTC), chat=CHAT, from_user=ADMIN, **fields)


def _photo() -> list[PhotoSize]:
    return [
        PhotoSize(file_id="small", file_unique_id="s", width=90, height=90),
        PhotoSize(file_id="big", file_unique_id="b", width=900, height=900),
    ]


def test_text_keeps_its_formatting_as_html() -> None:
    bold = MessageEntity(type="bold", offset=0, length=4)
    content = content_of(_message(text="Sale today", entities=[bold]))
    assert (content.kind, content.body, content.file_id) == (ContentKind.TEXT, "<b>Sale</b> today", None)


def test_a_photo_or_video_with_a_caption_and_the_largest_size() -> None:
    photo = content_of(_message(photo=_photo(), caption="New <model>"))
    assert (photo.kind, photo.file_id, photo.body) == (ContentKind.PHOTO, "big", "New &lt;model&gt;")
    video = Video(file_id="vid", file_unique_id="v", width=1, height=1, duration=3)
    clip = content_of(_message(video=video))
    assert (clip.kind, clip.file_id, clip.body) == (ContentKind.VIDEO, "vid", None), "a caption is optional"


@pytest.mark.parametrize("text", [" ", "\u200b", "\u200b \u200b", "\n\t", "\u2060\u00a0", "\u0301"])
def test_an_invisible_text_is_empty(text: str) -> None:
    with pytest.raises(ContentError) as refused:
        content_of(_message(text=text))
    assert refused.value.problem is ContentProblem.EMPTY


def test_a_sticker_is_not_broadcast() -> None:
    sticker = Sticker(
        file_id="s", file_unique_id="s", type="regular", width=1, height=1, is_animated=False, is_video=False
    )
    with pytest.raises(ContentError) as refused:
        content_of(_message(sticker=sticker))
    assert refused.value.problem is ContentProblem.UNSUPPORTED


@pytest.mark.parametrize(
    ("fields", "limit"),
    [
        ({"text": "x" * (MAX_TEXT + 1)}, MAX_TEXT),
        ({"text": "😀" * (MAX_TEXT // 2 + 1)}, MAX_TEXT),  # outside the BMP: two units each, as Telegram counts
        ({"photo": _photo(), "caption": "x" * (MAX_CAPTION + 1)}, MAX_CAPTION),
    ],
)
def test_over_telegrams_limits_is_refused_with_the_numbers(fields: dict[str, object], limit: int) -> None:
    with pytest.raises(ContentError) as refused:
        content_of(_message(**fields))
    assert refused.value.problem is ContentProblem.TOO_LONG and refused.value.limit == limit
    assert refused.value.length > limit


def test_exactly_at_the_limit_is_fine() -> None:
    assert content_of(_message(text="x" * MAX_TEXT)).kind is ContentKind.TEXT
    assert content_of(_message(photo=_photo(), caption="y" * MAX_CAPTION)).kind is ContentKind.PHOTO


def test_buttons() -> None:
    assert parse_button("Open the shop | https://example.com/shop?a=1") == (
        "Open the shop",
        "https://example.com/shop?a=1",
    )
    assert parse_button("A | b | http://x.example") == ("A | b", "http://x.example")
    assert parse_button("Channel|tg://resolve?domain=durov") == ("Channel", "tg://resolve?domain=durov")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("https://example.com", ContentProblem.BUTTON_FORMAT),
        ("no bar at all", ContentProblem.BUTTON_FORMAT),
        (" | https://example.com", ContentProblem.BUTTON_TEXT),
        ("x" * (MAX_BUTTON_TEXT + 1) + " | https://example.com", ContentProblem.BUTTON_TEXT),
        ("Shop | javascript:alert(1)", ContentProblem.BUTTON_URL),
        ("Shop | ftp://example.com", ContentProblem.BUTTON_URL),
        ("Shop | not a url", ContentProblem.BUTTON_URL),
        ("Shop | https://", ContentProblem.BUTTON_URL),
        ("Shop | https://localhost", ContentProblem.BUTTON_URL),
        ("Shop | https://пример.рф", ContentProblem.BUTTON_URL),
        ("Shop | https://example.com/" + "a" * 2100, ContentProblem.BUTTON_URL),
        ("Shop | https://exa mple.com", ContentProblem.BUTTON_URL),
        ("Shop | https://[::1", ContentProblem.BUTTON_URL),
    ],
)
def test_bad_buttons_name_the_problem(line: str, problem: ContentProblem) -> None:
    with pytest.raises(ContentError) as refused:
        parse_button(line)
    assert refused.value.problem is problem


@given(st.text(max_size=300))
def test_any_button_line_is_a_button_or_a_named_problem(line: str) -> None:
    try:
        label, url = parse_button(line)
    except ContentError as exc:
        assert exc.problem in {ContentProblem.BUTTON_FORMAT, ContentProblem.BUTTON_TEXT, ContentProblem.BUTTON_URL}
        return
    assert 1 <= telegram_length(label) <= MAX_BUTTON_TEXT and "\n" not in label
    assert url.split(":", 1)[0] in {"http", "https", "tg"} and url.isascii() and " " not in url


@given(st.text(max_size=50))
def test_telegram_length_counts_utf16_units(text: str) -> None:
    assert telegram_length(text) == sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


# --- pacing ---------------------------------------------------------------------------------------------


@given(st.lists(st.floats(0, 10, allow_nan=False), max_size=200), st.integers(1, 30))
def test_waiting_for_room_always_leaves_room(times: list[float], limit: int) -> None:
    calls = RecentCalls(window_s=1.0)
    now = 10.0
    for t in sorted(times):
        calls.note(7, now=t)
    wait = calls.wait_for_room(7, limit, now=now)
    assert wait >= 0
    if wait > 1e-5:  # (count() forgets what has aged, so the earlier moment is asked first)
        assert calls.count(7, now=now + wait - 1e-6) >= limit, "no room before the wait is over"
    assert calls.count(7, now=now + wait) < limit, "room once it is"


def test_bots_are_counted_apart_and_forgotten_when_idle() -> None:
    calls = RecentCalls(window_s=1.0)
    for i in range(25):
        calls.note(1, now=100.0 + i / 100)
    calls.note(2, now=100.0)
    assert calls.wait_for_room(1, 25, now=100.3) > 0 and calls.wait_for_room(2, 25, now=100.3) == 0
    assert calls.count(1, now=102.0) == 0 and calls.count(2, now=102.0) == 0
    assert calls._calls == {}


def test_bulk_sends_are_spread_evenly_and_leave_room_for_replies() -> None:
    traffic = RecentCalls(window_s=1.0)
    pacer = BulkPacer(traffic, rate=25)
    assert pacer.wait_s(9, now=50.0) == 0
    pacer._last[9] = 50.0
    assert pacer.wait_s(9, now=50.01) == pytest.approx(0.03), "1/25 s apart, never a burst"
    for i in range(25):  # replies fill the second: bulk waits for the oldest to age out
        traffic.note(9, now=50.0 + i * 0.001)
    assert pacer.wait_s(9, now=50.5) == pytest.approx(0.5)


def test_progress_rate_and_eta() -> None:
    progress = Progress(total=100, sent=40, failed=5, blocked=5, unknown=0, pending=50, elapsed_s=2.0)
    assert progress.rate == 25.0 and progress.eta_s == 2.0
    assert Progress(10, 0, 0, 0, 0, 10, 0.0).eta_s is None
