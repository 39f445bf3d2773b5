"""A shop's own words, checked as Telegram will check them: HTML tags and entities, lengths, support
contacts, and the section files `tenants update --welcome-file` reads."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.telegram_html import HtmlProblem, check_html, visible_length
from supervisor.profile_options import add_profile_arguments, profile_changes
from supervisor.validation import InputError
from tenant_runtime.shop_profile import ProfileError, ShopProfile, TextField, parse_support, parse_text


@given(st.text(max_size=300))
def test_any_text_is_either_accepted_or_refused_with_a_reason(value: str) -> None:
    try:
        assert check_html(value, limit=1000) == value
    except HtmlProblem as exc:
        assert str(exc)


@given(st.text(alphabet=st.characters(blacklist_characters="<>&\x00"), min_size=1, max_size=200).filter(str.strip))
def test_plain_text_without_markup_characters_is_accepted_as_is(value: str) -> None:
    assert check_html(value, limit=200) == value and visible_length(value) == len(value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("Hello<br>world", "<br>"),
        ("<b>bold", "never closed"),
        ("<b><i>x</b></i>", "not open"),
        ("1 < 2", "&lt;"),
        ("Tom & Jerry", "&amp;"),
        ('<a href="javascript:alert(1)">x</a>', "https://"),
        ('<b onclick="x">x</b>', "attribute"),
        ("<script>x</script>", "not a tag Telegram allows"),
        ("&nbsp;", "not an entity"),
        ("   ", "empty"),
    ],
)
def test_what_telegram_would_refuse_is_refused_by_name(value: str, problem: str) -> None:
    with pytest.raises(HtmlProblem, match=problem):
        check_html(value, limit=100)


def test_limits_count_what_telegram_counts() -> None:
    assert visible_length('<b>ab</b> &amp; <a href="https://x.org">c</a>') == 6
    check_html("x" * 3000, limit=3000)
    with pytest.raises(ProfileError, match="at most 3000"):
        parse_text(TextField.WELCOME, "<b>" + "x" * 3001 + "</b>")
    with pytest.raises(ProfileError, match="at most 120"):
        parse_text(TextField.SHORT_DESCRIPTION, "x" * 121)
    assert parse_text(TextField.DESCRIPTION, " a < b \r\n") == "a < b", "descriptions are plain text"


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("@shop_help", "https://t.me/shop_help"),
        ("shop_help", "https://t.me/shop_help"),
        ("https://x.org/help", "https://x.org/help"),
    ],
)
def test_support_contacts_become_links(value: str, url: str) -> None:
    assert parse_support(value) == url


@pytest.mark.parametrize(
    "value", ["@ab", "http://x.org", "https://x.org/a b", "javascript:x", "", "@" + "a" * 40, "@1abc"]
)
def test_bad_support_contacts_are_refused(value: str) -> None:
    with pytest.raises(ProfileError, match="support contact"):
        parse_support(value)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_profile_arguments(parser)
    return parser.parse_args(argv)


def test_a_file_with_sections_sets_each_language(tmp_path: Path) -> None:
    path = tmp_path / "welcome.txt"
    path.write_text("\ufeffru:\n<b>Привет</b>!\nДобро пожаловать.\nen:\n\n", encoding="utf-8")
    changes = profile_changes(_args("--welcome-file", str(path), "--support", "@shop_help"))
    assert changes == {
        "support_url": "https://t.me/shop_help",
        "texts": {"ru": {"welcome": "<b>Привет</b>!\nДобро пожаловать."}, "en": {"welcome": ""}},
    }
    one = tmp_path / "help_en.txt"
    one.write_text("Ask us anything.", encoding="utf-8")
    assert profile_changes(_args("--help-file", f"en:{one}")) == {"texts": {"en": {"help": "Ask us anything."}}}
    assert profile_changes(_args("--support", "none")) == {"support_url": ""}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"no header here", "before any 'ru:'"),
        (b"", "no 'ru:' or 'en:' section"),
        (b"ru:\n<br>", "<br>"),
        (b"ru:\n\xff\xfe bad", "not UTF-8"),
        (b"ru:\n" + b"x" * 70_000, "at most 65536"),
    ],
)
def test_bad_text_files_are_refused_by_name(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=problem):
        profile_changes(_args("--welcome-file", str(path)))


def test_a_missing_file_is_named() -> None:
    with pytest.raises(InputError, match=r"cannot read /nonexistent/x\.txt"):
        profile_changes(_args("--help-file", "/nonexistent/x.txt"))


def test_a_profile_keeps_only_known_languages_and_fields() -> None:
    profile = ShopProfile.from_row(None, {"ru": {"welcome": "a", "bogus": "b"}, "de": {"welcome": "c"}})
    assert profile.text("ru", TextField.WELCOME) == "a" and profile.text("de", TextField.WELCOME) is None
    assert dict(profile.texts["ru"]) == {"welcome": "a"}
