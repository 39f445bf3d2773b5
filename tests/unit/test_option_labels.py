"""Every word a user sees is in their language: enum options, the confirm screen, the progress message."""

from __future__ import annotations

import re

import pytest

from shared.registry import load_registry
from tenant_runtime.config import Language
from tenant_runtime.telegram.job_texts import clock, first_progress, progress_text, usual
from tenant_runtime.telegram.option_labels import has_label, option_label, readable
from tenant_runtime.telegram.progress import cadence
from tenant_runtime.telegram.wizard_fields import labelled

LANGS: tuple[Language, ...] = ("ru", "en")
SNAKE = re.compile(r"[A-Za-z0-9]+_[A-Za-z0-9_]+")
ALL_CAPS_WORD = re.compile(r"\b[A-Z]{3,}\b")
CYRILLIC = re.compile(r"[а-яё]", re.I)
ABBREVIATIONS = {"JPEG", "PNG"}  # file formats are called by these names in every language
# Values that read the same in every language: ratios, resolutions, sizes, numbers.
UNIVERSAL = re.compile(r"\d+:\d+|\d+[pP]|\d+K|\d+")


def _options() -> list[tuple[str, str, str]]:
    found = []
    for spec in load_registry().sellable():
        for field in spec.inputs:
            if field.type == "enum":
                found += [(spec.id, field.name, value) for value in field.values or ()]
    return found


OPTIONS = _options()


def test_the_walk_sees_the_sold_enum_options() -> None:
    values = {value for _, _, value in OPTIONS}
    assert len(OPTIONS) > 300 and {"square_hd", "portrait_16_9", "TURBO", "basic", "high", "png"} <= values


@pytest.mark.parametrize("lang", LANGS)
def test_every_enum_option_of_every_sold_model_has_a_label(lang: Language) -> None:
    raw_on_screen = []
    for model, field, value in OPTIONS:
        label = option_label(field, value, lang)
        problems = []
        if not has_label(field, value):
            problems.append("no label (fallback)")
        if SNAKE.search(label):
            problems.append("snake_case")
        if set(ALL_CAPS_WORD.findall(label)) - ABBREVIATIONS:
            problems.append("ALL-CAPS token")
        if not UNIVERSAL.fullmatch(value) and label == value:
            problems.append("the wire value itself")
        if lang == "ru" and not UNIVERSAL.fullmatch(value) and not CYRILLIC.search(label):
            problems.append("no Russian word")
        if problems:
            raw_on_screen.append(f"{model} {field}={value!r} -> {label!r}: {', '.join(problems)}")
    assert raw_on_screen == []


def test_labels_people_use() -> None:
    assert option_label("image_size", "square_hd", "ru") == "Квадрат HD"
    assert option_label("image_size", "portrait_16_9", "ru") == "Портрет 16:9"
    assert option_label("image_size", "portrait_16_9", "en") == "Portrait 16:9"
    assert option_label("quality", "basic", "ru") == "Обычное"
    assert option_label("quality", "high", "ru") == "Высокое"
    assert option_label("acceleration", "high", "ru") == "Сильное"
    assert option_label("rendering_speed", "TURBO", "ru") == "Быстрый"
    assert option_label("duration", "10", "ru") == "10 с"
    assert option_label("duration", "10", "en") == "10 s"
    assert option_label("upscale_factor", "4", "en") == "×4"
    assert option_label("aspect_ratio", "16:9", "ru") == "16:9"
    assert option_label("resolution", "512P", "ru") == "512p"


def test_an_unlabelled_value_still_reads_as_words() -> None:
    assert readable("landscape_16_9") == "Landscape 16:9"
    assert readable("SUPER_FAST") == "Super fast"
    assert option_label("new_field", "ultra_wide", "ru") == "Ultra wide"
    assert not has_label("new_field", "ultra_wide")


def test_a_question_label_gets_no_colon() -> None:
    assert labelled("Улучшить описание автоматически?", "Да") == "Улучшить описание автоматически? Да"
    assert labelled("Качество", "Высокое") == "Качество: Высокое"


def test_progress_reads_from_the_first_second() -> None:
    assert first_progress("ru", "Kling", 120) == "⏳ Kling: в очереди… 0:00 · обычно ~2 мин"
    assert first_progress("en", "Kling", 40) == "⏳ Kling: queued… 0:00 · usually ~40 s"
    assert progress_text("ru", "Kling", "generating", 65.4, 120) == "⏳ Kling: генерируется… 1:05 · обычно ~2 мин"
    assert clock(3599) == "59:59" and usual(7, "ru") == "~5 с" and usual(150, "en") == "~2 min"


def test_progress_edits_stay_far_below_telegram_limits() -> None:
    assert [cadence(s) for s in (0, 29, 30, 179, 180, 3600)] == [5, 5, 10, 10, 30, 30]
