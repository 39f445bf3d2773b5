"""The model registry: the real models/registry.json is consistent, sanely priced and safe to sell."""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.paths import data_dir
from shared.registry import (
    CATEGORIES,
    FieldSpec,
    ModelSpec,
    RegistryError,
    load_registry,
    to_kie_input,
    validate_input,
)

REGISTRY = load_registry()
MODELS = REGISTRY.models
PRICED = [m for m in MODELS if m.prices]
WIZARD_TYPES = {"string", "int", "float", "bool", "enum", "image_url", "image_urls", "audio_url", "video_url"}
OUTPUTS = {"image": {"image"}, "edit": {"image"}, "video": {"video"}, "upscale": {"image", "video"},
           "audio": {"audio", "text"}}  # fmt: skip


def _raw() -> dict[str, Any]:
    return json.loads((data_dir("models") / "registry.json").read_text(encoding="utf-8"))


def _matches(when: dict[str, object], values: dict[str, object]) -> bool:
    return all(k in values and values[k] == v and type(values[k]) is type(v) for k, v in when.items())


# ── the real file ──────────────────────────────────────────────────────────────


def test_real_file_has_at_least_73_models_with_unique_kie_ids() -> None:
    ids = [m.id for m in MODELS]
    assert len(ids) >= 73
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9._/-]*", i) for i in ids), ids
    assert _raw()["version"] == 1 and REGISTRY.credit_usd == Decimal("0.005")


@pytest.mark.parametrize("spec", MODELS, ids=lambda m: m.id)
def test_model_is_well_formed(spec: ModelSpec) -> None:
    assert spec.category in CATEGORIES
    assert spec.output in OUTPUTS[spec.category]
    assert spec.typical_seconds > 0 and (spec.timeout_seconds is None or spec.timeout_seconds > spec.typical_seconds)
    assert spec.inputs, "a model with no inputs cannot be ordered"
    for field in spec.inputs:
        assert field.type in WIZARD_TYPES
        assert field.label.ru.strip() and field.label.en.strip()
        if field.type == "enum":
            assert field.values, f"{field.name}: empty enum"
            for value in field.values:
                assert len(value.encode()) <= 40, f"{field.name}: {value!r} too long for a button callback"
        if field.default is not None:
            field.coerce(field.default)  # raises if invalid


@pytest.mark.parametrize("spec", PRICED, ids=lambda m: m.id)
def test_prices_are_positive_and_every_combination_has_exactly_one(spec: ModelSpec) -> None:
    assert all(mode.credits > 0 for mode in spec.prices)
    keys = sorted({k for mode in spec.prices for k in mode.when} | {k for u in spec.unavailable for k in u})
    fields = [spec.field(k) for k in keys]
    assert all(f is not None and (f.required or f.default is not None) for f in fields)
    for combination in itertools.product(*(f.choices() for f in fields if f is not None)):
        chosen = dict(zip(keys, combination, strict=True))
        if any(_matches(u, chosen) for u in spec.unavailable):
            continue
        assert sum(_matches(mode.when, chosen) for mode in spec.prices) == 1, chosen


def test_sellable_excludes_unpriced_models() -> None:
    sellable = REGISTRY.sellable()
    unpriced = [m for m in MODELS if not m.prices and not m.free]
    assert unpriced, "the facts have models without a determinable price"
    assert not {m.id for m in unpriced} & {m.id for m in sellable}
    unspoken = [m for m in MODELS if m.family is None]  # served by KIE on endpoints the product does not speak
    assert unspoken and not {m.id for m in unspoken} & {m.id for m in sellable}
    assert len(sellable) + len({m.id for m in unpriced} | {m.id for m in unspoken}) == len(MODELS)
    for spec in unpriced:
        assert spec.price_credits({}) is None
    assert REGISTRY.get("kling/v2-5-turbo") in unpriced


def test_categories_count_sellable_models_in_menu_order() -> None:
    categories = REGISTRY.categories()
    ids = [c for c, _ in categories]
    assert ids == sorted(ids, key=CATEGORIES.index) and all(n > 0 for _, n in categories)
    assert sum(n for _, n in categories) == len([m for m in REGISTRY.sellable() if m.follow_up is None])
    for category, count in categories:
        models = REGISTRY.by_category(category)
        assert len(models) == count and all(m.category == category and m.sellable for m in models)
    assert REGISTRY.get("nano-banana-pro") is not None and REGISTRY.get("no/such-model") is None


def _spec(model_id: str) -> ModelSpec:
    spec = REGISTRY.get(model_id)
    assert spec is not None
    return spec


def test_facts_errors_are_fixed() -> None:
    for model_id, category, output in [
        ("google/veo-3", "video", "video"),
        ("suno/v5", "audio", "audio"),
        ("elevenlabs/speech-to-text", "audio", "text"),
        ("kling/v2-1-pro", "video", "video"),
    ]:
        assert (_spec(model_id).category, _spec(model_id).output) == (category, output)
    assert REGISTRY.get("hailuo/2.3") is None and REGISTRY.get("grok/imagine") is None  # not KIE ids
    assert _spec("google/imagen4-ultra").price_credits({}) == Decimal(12)
    assert _spec("google/imagen4").price_credits({}) == Decimal(8)
    assert _spec("kling-2.6/image-to-video").field("image_urls") is not None
    notes = _raw()["_notes"]
    assert len(notes) >= 10 and all(isinstance(n, str) and n for n in notes)


# ── pricing and input ──────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("model_id", "params", "credits"),
    [
        ("kling-2.6/text-to-video", {"sound": True, "duration": "10"}, Decimal(220)),
        ("kling-2.6/text-to-video", {"sound": False, "duration": 5}, Decimal(55)),
        ("nano-banana-pro", {"prompt": "cat"}, Decimal(36)),  # default resolution 1K
        ("nano-banana-pro", {"prompt": "cat", "resolution": "4K"}, Decimal(48)),
        ("sora-2-pro-text-to-video", {"size": "high", "n_frames": "15"}, Decimal(630)),
        ("z-image", {}, Decimal("0.8")),
        ("runway/gen-4", {"duration": "10", "resolution": "1080p"}, None),  # not offered
        ("wan/2-2-animate-move", {}, None),  # unpriced
    ],
)
def test_price_credits(model_id: str, params: dict[str, object], credits: Decimal | None) -> None:
    assert _spec(model_id).price_credits(params) == credits


def test_to_kie_input_coerces_and_applies_defaults_only_where_defined() -> None:
    spec = _spec("nano-banana-pro")
    assert to_kie_input(spec, {"prompt": "cat", "image_input": "https://x.test/a.png"}) == {
        "prompt": "cat",
        "image_input": ["https://x.test/a.png"],
        "resolution": "1K",
    }
    kling = to_kie_input(_spec("kling/v2-1-pro"), {"prompt": "go", "image_url": "https://x.test/a.png", "cfg_scale": 1})
    assert kling == {"prompt": "go", "image_url": "https://x.test/a.png", "duration": "5", "cfg_scale": 1.0}
    with pytest.raises(ValueError, match="prompt: is required"):
        to_kie_input(spec, {})


@pytest.mark.parametrize(
    ("model_id", "params", "problem"),
    [
        ("z-image", {"aspect_ratio": "1:1"}, "prompt: is required"),
        ("z-image", {"prompt": "", "aspect_ratio": "1:1"}, "prompt: is required"),
        ("z-image", {"prompt": 5, "aspect_ratio": "1:1"}, "prompt: must be text"),
        ("z-image", {"prompt": "x" * 1001, "aspect_ratio": "1:1"}, "prompt: must be at most 1000 characters"),
        ("z-image", {"prompt": "cat", "aspect_ratio": "7:5"}, "aspect_ratio: must be one of"),
        ("z-image", {"prompt": "cat", "aspect_ratio": "1:1", "colour": "red"}, "colour: unknown field"),
        ("flux-2/pro-text-to-image", {"prompt": "ab", "aspect_ratio": "1:1", "resolution": "1K"}, "at least 3"),
        ("kling-2.6/text-to-video", {"prompt": "p", "sound": "loud", "aspect_ratio": "1:1", "duration": "5"},
         "sound: must be yes or no"),
        ("kling/v2-1-pro", {"prompt": "p", "image_url": "https://x.test/a", "cfg_scale": 2}, "cfg_scale: must be at most 1"),
        ("kling/v2-1-pro", {"prompt": "p", "image_url": "https://x.test/a", "cfg_scale": "much"},
         "cfg_scale: must be a number"),
        ("kling/v2-1-pro", {"prompt": "p", "image_url": "file:///etc/passwd"}, "image_url: must be an http(s) URL"),
        ("ideogram/v3-text-to-image", {"prompt": "p", "seed": 1.5}, "seed: must be a whole number"),
        ("flux-2/pro-image-to-image",
         {"prompt": "abc", "input_urls": ["https://x.test/a"] * 9, "aspect_ratio": "1:1", "resolution": "1K"},
         "input_urls: at most 8 files"),
        ("hailuo/2-3-image-to-video-pro",
         {"prompt": "p", "image_url": "https://x.test/a", "duration": "10", "resolution": "1080p"},
         "duration=10 with resolution=1080p is not available"),
    ],
)  # fmt: skip
def test_validate_input_reports_each_bad_input(model_id: str, params: dict[str, object], problem: str) -> None:
    problems = validate_input(_spec(model_id), params)
    assert any(problem in p for p in problems), problems


# ── families, follow-ups, conditional fields ───────────────────────────────────


def test_the_catalog_sells_at_least_60_models_each_with_a_price_or_free() -> None:
    catalog = [m for m in REGISTRY.sellable() if m.follow_up is None]
    assert len(catalog) >= 60
    assert all(m.prices or m.free for m in REGISTRY.sellable())
    flagships = {"openai/4o-image", "flux/kontext", "flux/kontext-edit", "google/veo-3.1", "suno/v5", "runway/gen-4"}
    assert flagships | {"midjourney/api"} <= {m.id for m in catalog}


@pytest.mark.parametrize("model_id", ["midjourney/upscale", "midjourney/vary", "google/veo-3"])
def test_what_kie_documents_no_price_for_is_not_sold(model_id: str) -> None:
    spec = _spec(model_id)
    assert not spec.sellable and spec not in REGISTRY.sellable()


@pytest.mark.parametrize(
    ("model_id", "params", "credits"),
    [
        ("openai/4o-image", {"prompt": "p", "size": "2:3"}, Decimal(6)),
        ("flux/kontext", {"prompt": "p"}, Decimal(4)),
        ("flux/kontext", {"prompt": "p", "model": "flux-kontext-max"}, Decimal(8)),
        ("flux/kontext-edit", {"prompt": "p", "image_url": "https://f.test/a.png"}, Decimal(4)),
        ("google/veo-3.1", {"prompt": "p"}, Decimal(60)),
        ("google/veo-3.1", {"prompt": "p", "model": "veo3", "aspect_ratio": "Auto"}, Decimal(250)),
        ("google/veo-3.1", {"prompt": "p", "model": "veo3", "generation_type": "REFERENCE_2_VIDEO"}, None),
        ("suno/v5", {"prompt": "p"}, Decimal(12)),
        ("suno/v5", {"custom_mode": True, "instrumental": True, "style": "s", "title": "t"}, Decimal(12)),
        ("runway/gen-4", {"prompt": "p", "duration": "5", "resolution": "720p"}, Decimal(12)),
        ("runway/gen-4", {"prompt": "p", "duration": "10", "resolution": "720p"}, Decimal(30)),
        ("runway/gen-4", {"prompt": "p", "duration": "5", "resolution": "1080p"}, Decimal(30)),
        ("runway/gen-4", {"prompt": "p", "duration": "10", "resolution": "1080p"}, None),
        ("midjourney/api", {"prompt": "p", "speed": "relaxed"}, Decimal(3)),
        ("midjourney/api", {"prompt": "p"}, Decimal(8)),
        ("midjourney/api", {"prompt": "p", "speed": "turbo"}, Decimal(16)),
    ],
)
def test_flagship_prices_per_variant_duration_and_quality(
    model_id: str, params: dict[str, object], credits: Decimal | None
) -> None:
    assert _spec(model_id).price_credits(params) == credits


def test_follow_ups_are_offered_on_their_parent_only_and_never_in_the_catalog() -> None:
    hd = _spec("google/veo-3.1/1080p")
    assert hd.follow_up is not None and hd.follow_up.of == ("google/veo-3.1",)
    assert REGISTRY.follow_ups("google/veo-3.1") == (hd,)
    assert REGISTRY.follow_ups("google/veo-3") == ()
    assert hd not in REGISTRY.by_category("video") and hd in REGISTRY.sellable()
    assert all(f.internal for f in hd.inputs if f.name == "parent_task")


def test_a_conditional_field_is_asked_and_required_only_when_its_choice_is_made() -> None:
    veo = _spec("google/veo-3.1")
    photos = veo.field("image_urls")
    assert photos is not None and not veo.needs_files  # text-to-video needs no uploads
    assert not veo.asked(photos, {"prompt": "a fox"})
    assert to_kie_input(veo, {"prompt": "a fox", "image_urls": ["https://f.test/a.png"]}).get("image_urls") is None
    reference = {"prompt": "a fox", "generation_type": "REFERENCE_2_VIDEO"}
    assert veo.asked(photos, reference)
    assert validate_input(veo, reference) == ["image_urls: is required"]
    assert validate_input(veo, {**reference, "image_urls": ["https://f.test/a.png"]}) == []


@pytest.mark.parametrize(
    ("params", "conflict"),
    [
        (
            {"model": "veo3", "generation_type": "REFERENCE_2_VIDEO"},
            {"model": "veo3", "generation_type": "REFERENCE_2_VIDEO"},
        ),
        (
            {"generation_type": "REFERENCE_2_VIDEO", "aspect_ratio": "Auto"},
            {"generation_type": "REFERENCE_2_VIDEO", "aspect_ratio": "Auto"},
        ),
        ({"generation_type": "REFERENCE_2_VIDEO"}, None),  # the defaults of fields not asked yet do not count
        ({"model": "veo3", "aspect_ratio": "Auto"}, None),
    ],
)
def test_conflict_names_an_unavailable_combination_already_chosen(
    params: dict[str, object], conflict: dict[str, object] | None
) -> None:
    """What the wizard refuses on the spot (a Veo aspect ratio the reference mode does not support)."""
    assert _spec("google/veo-3.1").conflict(params) == conflict


# ── property: every valid input of a priced model gets exactly one positive price ──

URLS = st.sampled_from(["https://files.test/a.png", "https://files.test/b.mp4", "https://files.test/c.mp3"])


def _value(field: FieldSpec) -> st.SearchStrategy[object]:
    if field.type == "enum":
        return st.sampled_from(field.values or ())
    if field.type == "bool":
        return st.booleans()
    if field.type == "int":
        low = None if field.min is None else math.ceil(field.min)
        high = None if field.max is None else math.floor(field.max)
        return st.integers(min_value=low, max_value=high)
    if field.type == "float":
        return st.floats(min_value=field.min, max_value=field.max, allow_nan=False, allow_infinity=False)
    if field.type == "string":
        low = field.min_length or 1
        return st.text("abcdef xyz", min_size=low, max_size=min(field.max_length or 200, low + 200))
    if field.type == "image_urls":
        return st.lists(URLS, min_size=1, max_size=field.max_items or 4)
    return URLS


def _valid_input(spec: ModelSpec) -> st.SearchStrategy[dict[str, object]]:
    return st.fixed_dictionaries(
        {f.name: _value(f) for f in spec.inputs if f.required},
        optional={f.name: _value(f) for f in spec.inputs if not f.required},
    )


def _resolved(spec: ModelSpec, params: dict[str, object]) -> dict[str, object]:
    """The input with defaults and coercion applied, without rejecting unavailable combinations."""
    values = {f.name: f.default for f in spec.inputs if f.default is not None}
    values.update({k: spec.field(k).coerce(v) for k, v in params.items()})  # type: ignore[union-attr]
    return values


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_every_valid_input_of_a_priced_model_gets_exactly_one_positive_price(data: st.DataObject) -> None:
    spec = data.draw(st.sampled_from(PRICED), label="model")
    params = data.draw(_valid_input(spec), label="params")
    problems = validate_input(spec, params)
    if any(_matches(u, _resolved(spec, params)) for u in spec.unavailable):
        assert problems and spec.price_credits(params) is None
        return
    assert problems == []
    sent = to_kie_input(spec, params)
    matching = [mode for mode in spec.prices if _matches(mode.when, sent)]
    assert len(matching) == 1
    assert spec.price_credits(params) == matching[0].credits > 0


# ── broken registries ──────────────────────────────────────────────────────────


def _model(doc: dict[str, Any], model_id: str) -> dict[str, Any]:
    return next(m for m in doc["models"] if m["id"] == model_id)


def _field(doc: dict[str, Any], model_id: str, name: str) -> dict[str, Any]:
    return next(f for f in _model(doc, model_id)["inputs"] if f["name"] == name)


def _empty_enum(doc: dict[str, Any]) -> None:
    _field(doc, "flux-2/pro-text-to-image", "resolution")["values"] = []


def _duplicate_id(doc: dict[str, Any]) -> None:
    doc["models"].append(copy.deepcopy(_model(doc, "z-image")))


def _unknown_type(doc: dict[str, Any]) -> None:
    _field(doc, "google/imagen4", "aspect_ratio")["type"] = "colour"


def _negative_price(doc: dict[str, Any]) -> None:
    _model(doc, "google/nano-banana")["prices"][0]["credits"] = -4


def _uncovered_combination(doc: dict[str, Any]) -> None:
    _model(doc, "kling-2.6/text-to-video")["prices"].pop()


def _invalid_default(doc: dict[str, Any]) -> None:
    _field(doc, "wan/2-5-text-to-video", "duration")["default"] = "7"


def _price_on_optional_field_without_default(doc: dict[str, Any]) -> None:
    del _field(doc, "kling/v2-1-standard", "duration")["default"]


def _follow_up_of_unknown_model(doc: dict[str, Any]) -> None:
    _model(doc, "google/veo-3.1/1080p")["follow_up"]["of"] = ["google/veo-9"]


def _condition_on_a_later_field(doc: dict[str, Any]) -> None:
    _field(doc, "google/veo-3.1", "model")["when"] = {"aspect_ratio": "16:9"}


@pytest.mark.parametrize(
    ("break_it", "model_id", "field"),
    [
        (_empty_enum, "flux-2/pro-text-to-image", "resolution"),
        (_duplicate_id, "z-image", "id"),
        (_unknown_type, "google/imagen4", "aspect_ratio"),
        (_negative_price, "google/nano-banana", "credits"),
        (_uncovered_combination, "kling-2.6/text-to-video", "duration"),
        (_invalid_default, "wan/2-5-text-to-video", "duration"),
        (_price_on_optional_field_without_default, "kling/v2-1-standard", "duration"),
        (_follow_up_of_unknown_model, "google/veo-3.1/1080p", "follow_up.of"),
        (_condition_on_a_later_field, "google/veo-3.1", "model"),
    ],
)
def test_broken_registry_names_model_and_field(
    tmp_path: Path, break_it: Callable[[dict[str, Any]], None], model_id: str, field: str
) -> None:
    doc = _raw()
    break_it(doc)
    path = tmp_path / "models" / "registry.json"
    path.parent.mkdir()
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    message = str(caught.value)
    assert message.startswith("models/registry.json: ")
    assert f"model {model_id!r}" in message, message
    assert re.search(rf"fields? '[^']*{re.escape(field)}", message), message


def test_unreadable_registry_raises_registry_error(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(RegistryError, match=r"registry\.json: Expecting property name"):
        load_registry(path)
    with pytest.raises(RegistryError, match=r"missing\.json: .*No such file"):
        load_registry(tmp_path / "missing.json")
