"""What a person calls each option of a model's enum fields, per language.

The wire value (`square_hd`, `TURBO`, `basic`) is what KIE gets; the label is what the user sees on
buttons and on the confirm screen. Labels are looked up by (field, value) first, where the same value
means different things in different fields (`high` acceleration vs `high` quality), then by value.
Values that read the same in every language (ratios, resolutions) are shown as they are. Anything
else falls back to a readable form of the value; a test walks every enum option of every sold model
so that no sold model ever reaches the fallback.
"""

from __future__ import annotations

import re

from tenant_runtime.config import Language

# value -> (ru, en)
_BY_VALUE: dict[str, tuple[str, str]] = {
    "auto": ("Авто", "Auto"),
    "AUTO": ("Авто", "Auto"),
    "Auto": ("Авто", "Automatic"),
    "square": ("Квадрат", "Square"),
    "square_hd": ("Квадрат HD", "Square HD"),
    "portrait": ("Вертикальное", "Portrait"),
    "landscape": ("Горизонтальное", "Landscape"),
    "portrait_4_3": ("Портрет 4:3", "Portrait 4:3"),
    "portrait_3_2": ("Портрет 3:2", "Portrait 3:2"),
    "portrait_16_9": ("Портрет 16:9", "Portrait 16:9"),
    "landscape_4_3": ("Альбомный 4:3", "Landscape 4:3"),
    "landscape_3_2": ("Альбомный 3:2", "Landscape 3:2"),
    "landscape_16_9": ("Альбомный 16:9", "Landscape 16:9"),
    "landscape_21_9": ("Альбомный 21:9", "Landscape 21:9"),
    "TURBO": ("Быстрый", "Fast"),
    "BALANCED": ("Сбалансированный", "Balanced"),
    "QUALITY": ("Качественный", "Quality"),
    "GENERAL": ("Универсальный", "General"),
    "REALISTIC": ("Реалистичный", "Realistic"),
    "DESIGN": ("Дизайн", "Design"),
    "FICTION": ("Художественный", "Fiction"),
    "basic": ("Обычное", "Basic"),
    "standard": ("Стандартное", "Standard"),
    "high": ("Высокое", "High"),
    "png": ("PNG, без потерь", "PNG, lossless"),
    "jpeg": ("JPEG, файл меньше", "JPEG, smaller file"),
    "jpg": ("JPEG, файл меньше", "JPEG, smaller file"),
    "none": ("Нет", "None"),
    "regular": ("Обычное", "Regular"),
    "relaxed": ("Неспешное", "Relaxed"),
    "fun": ("Весёлый", "Fun"),
    "normal": ("Обычный", "Normal"),
    "spicy": ("Пикантный", "Spicy"),
}

# (field, value) -> (ru, en), where the field changes the meaning (or the grammatical gender).
_BY_FIELD: dict[tuple[str, str], tuple[str, str]] = {
    ("acceleration", "none"): ("Без ускорения", "None"),
    ("acceleration", "regular"): ("Обычное", "Regular"),
    ("acceleration", "high"): ("Сильное", "Strong"),
    ("model", "flux-kontext-pro"): ("Pro — быстрее", "Pro — faster"),
    ("model", "flux-kontext-max"): ("Max — для сложных сцен", "Max — for complex scenes"),
    ("model", "veo3_fast"): ("Быстрый", "Fast"),
    ("model", "veo3"): ("Качество", "Quality"),
    ("generation_type", "TEXT_2_VIDEO"): ("По описанию", "From the description"),
    ("generation_type", "REFERENCE_2_VIDEO"): ("По вашим фото", "From your photos"),
    ("speed", "fast"): ("Быстрое", "Fast"),
    ("speed", "turbo"): ("Турбо", "Turbo"),
    ("version", "7"): ("Версия 7", "Version 7"),
    ("version", "6.1"): ("Версия 6.1", "Version 6.1"),
    ("version", "niji6"): ("Niji 6 — аниме", "Niji 6 — anime"),
}

# Fields whose numeric values are seconds or a factor.
_SECONDS_FIELDS = frozenset({"duration", "n_frames"})
_FACTOR_FIELDS = frozenset({"upscale_factor"})
_SECONDS = {"ru": "{n} с", "en": "{n} s"}

# Values that read the same in every language: ratios (16:9), resolutions (1080p, 512P, 2K), numbers.
_UNIVERSAL = re.compile(r"\d+:\d+|\d+[pP]|\d+K|\d+")
_RATIO_IN_NAME = re.compile(r"(\d+)_(\d+)")


def option_label(field: str, value: object, lang: Language) -> str:
    """The label of enum `value` of `field` in `lang`."""
    wire = str(value)
    index = 0 if lang == "ru" else 1
    found = _BY_FIELD.get((field, wire)) or _BY_VALUE.get(wire)
    if found is not None:
        return found[index]
    if wire.isdigit() and field in _SECONDS_FIELDS:
        return _SECONDS[lang].format(n=wire)
    if wire.isdigit() and field in _FACTOR_FIELDS:
        return f"×{wire}"
    if _UNIVERSAL.fullmatch(wire):
        return wire[:-1] + "p" if wire.endswith("P") else wire
    return readable(wire)


def has_label(field: str, value: object) -> bool:
    """The value has a label of its own (or reads the same in every language): not the fallback."""
    wire = str(value)
    return (field, wire) in _BY_FIELD or wire in _BY_VALUE or _UNIVERSAL.fullmatch(wire) is not None


def readable(wire: str) -> str:
    """The fallback for a value nobody labelled: `landscape_16_9` -> "Landscape 16:9", `TURBO` -> "Turbo"."""
    text = _RATIO_IN_NAME.sub(r"\1:\2", wire).replace("_", " ").strip()
    return text[:1].upper() + text[1:].lower() if text else wire
