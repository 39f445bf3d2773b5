"""Which fields the wizard asks, and how it asks for and shows each one (labels, prompts, values)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.registry import FILE_TYPES, FieldSpec, ModelSpec
from tenant_runtime.telegram.option_labels import option_label

if TYPE_CHECKING:
    from tenant_runtime.telegram.context import Ctx


def steps(spec: ModelSpec, params: dict[str, Any]) -> list[FieldSpec]:
    """The fields asked for an order that has `params` so far (conditions depend on earlier answers)."""
    return [
        f
        for f in spec.inputs
        if not f.internal and spec.asked(f, params) and (f.required or f.type in ("enum", "bool") or _tunable(f))
    ]


def _tunable(field: FieldSpec) -> bool:
    """A bounded number (guidance, steps) is worth offering; an open one (a seed) is not."""
    return field.type in ("int", "float") and field.min is not None and field.max is not None


def field_label(ctx: Ctx, field: FieldSpec) -> str:
    return field.label.ru if ctx.lang == "ru" else field.label.en


def prompt(ctx: Ctx, field: FieldSpec, received: int) -> str:
    if field.type == "string":
        return ctx.t("wizard.ask_text", max=field.max_length or 4000)
    if field.type in ("int", "float"):
        return ctx.t("wizard.ask_number", min=number_text(field.min), max=number_text(field.max))
    if field.type in ("enum", "bool"):
        return ctx.t("wizard.ask_choice")
    if field.type == "image_url":
        return ctx.t("wizard.ask_image")
    if field.type == "image_urls" and (field.max_items or 1) > 1:
        return ctx.t("wizard.ask_images", max=field.max_items, count=received)
    if field.type == "image_urls":
        return ctx.t("wizard.ask_image")
    return ctx.t("wizard.ask_audio" if field.type == "audio_url" else "wizard.ask_video")


def shown(ctx: Ctx, field: FieldSpec, value: object) -> str:
    """A chosen value as the confirm screen shows it: files as clips, yes/no and enum options by label."""
    if isinstance(value, list):
        return "📎" * len(value)
    if field.type in FILE_TYPES:
        return "📎"
    if isinstance(value, bool):
        return ctx.t("btn.yes") if value else ctx.t("btn.no")
    if field.type == "enum":
        return option_label(field.name, value, ctx.lang)
    return str(value)


def not_with(ctx: Ctx, spec: ModelSpec, chosen: FieldSpec, conflict: Mapping[str, object]) -> str:
    """ "Not available with Mode: Quality" for a refused combination, naming the choices already made."""
    others = [
        labelled(field_label(ctx, other), shown(ctx, other, value))
        for name, value in conflict.items()
        if name != chosen.name and (other := spec.field(name)) is not None
    ]
    return ctx.t("wizard.not_with", choices="; ".join(others))


def labelled(label: str, value: str) -> str:
    """ "Label: value", or "Label? value" for a label that is a question (never "?:")."""
    return f"{label} {value}" if label.rstrip().endswith("?") else f"{label}: {value}"


def number_text(value: float | None) -> str:
    """A bound as prompts show it: "10", "0.5", or "—" for none."""
    return "—" if value is None else f"{value:g}"
