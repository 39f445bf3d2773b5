"""What an owner types into /newshop, checked without a network: slugs suggested from any name, and the
platform bot's texts complete in both languages."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from supervisor.onboarding.checks import suggest_slug
from supervisor.onboarding.texts import _TEXTS, language_of, text
from supervisor.validation import SLUG_RE


@given(st.text(max_size=600))
def test_a_suggested_slug_is_always_a_valid_one_or_none(name: str) -> None:
    slug = suggest_slug(name)
    assert slug is None or SLUG_RE.fullmatch(slug)


@given(st.text(alphabet=string.ascii_lowercase + string.digits, min_size=3, max_size=32))
def test_a_name_that_is_already_a_slug_is_kept(name: str) -> None:
    assert suggest_slug(name) == name


def test_russian_names_are_transliterated() -> None:
    assert suggest_slug("Мой магазин") == "moi-magazin"
    assert suggest_slug("Съёмка: Щука и Ёж!") == "semka-schuka-i-ezh"
    assert suggest_slug("🔥🔥🔥") is None
    assert suggest_slug("Я" * 500) == "ya" * 16


def test_every_text_exists_in_both_languages_with_the_same_fields() -> None:
    for key, by_language in _TEXTS.items():
        assert set(by_language) == {"ru", "en"}, key
        fields = [{f for _, f, _, _ in string.Formatter().parse(v) if f} for v in by_language.values()]
        assert fields[0] == fields[1], key


def test_the_owners_language_follows_their_client() -> None:
    assert language_of("en-GB") == "en" and language_of("ru") == "ru" and language_of(None) == "ru"
    assert language_of("de") == "ru"
    assert text("en", "bad_name", max=64) == "The name must be 1 to 64 characters. Try a shorter one."
