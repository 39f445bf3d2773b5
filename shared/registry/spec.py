"""One model of the registry: its inputs, price modes, follow-ups, and how an order's input is resolved."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator

from shared.registry.fields import FILE_TYPES, Choice, FieldSpec, Frozen, Text, matches, wire

Category = Literal["image", "edit", "video", "upscale", "audio"]
Family = Literal["jobs", "gpt4o_image", "flux_kontext", "veo", "suno", "runway", "midjourney"]
CATEGORIES: tuple[Category, ...] = ("image", "edit", "video", "upscale", "audio")  # menu order
Output = Literal["image", "video", "audio", "text"]


class PriceMode(Frozen):
    credits: Decimal = Field(gt=0)
    when: dict[str, Choice] = Field(default_factory=dict)


class FollowUp(Frozen):
    """A paid action on a finished job of another model: one button per result (`per_output`, the
    result's number goes into the `index` input) or one for the whole result."""

    of: tuple[str, ...] = Field(min_length=1)
    label: Text
    per_output: bool = False


class ModelSpec(Frozen):
    id: str = Field(min_length=1)
    category: Category
    title: Text
    description: Text
    inputs: tuple[FieldSpec, ...]
    output: Output
    prices: tuple[PriceMode, ...]
    free: bool = False
    typical_seconds: int = Field(gt=0)
    timeout_seconds: int | None = Field(default=None, gt=0)
    unavailable: tuple[dict[str, Choice], ...] = ()
    family: Family | None = "jobs"
    follow_up: FollowUp | None = None
    callback_required: bool = False
    """KIE refuses the task without a callBackUrl (Suno), so it needs PUBLIC_BASE_URL like files do."""

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        names = [f.name for f in self.inputs]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"field {twice[0]!r}: defined twice")
        self._check_conditions()
        conditions = [mode.when for mode in self.prices] + list(self.unavailable)
        choices: dict[str, tuple[Choice, ...]] = {}
        for key in sorted({key for when in conditions for key in when}):
            field = self.field(key)
            if field is None or not field.choices() or field.when is not None:
                raise ValueError(f"field {key!r}: a price condition needs an unconditional enum or bool input")
            if not field.required and field.default is None:
                raise ValueError(f"field {key!r}: used by a price condition, so it must be required or have a default")
            for when in conditions:
                if key in when and when[key] not in field.choices():
                    raise ValueError(f"field {key!r}: price condition value {when[key]!r} is not allowed")
            choices[key] = field.choices()
        if self.prices:
            self._check_coverage(choices)
        return self

    def _check_conditions(self) -> None:
        """A `when` names earlier unconditional enum/bool fields and values they allow."""
        for position, field in enumerate(self.inputs):
            for key, value in (field.when or {}).items():
                earlier = next((f for f in self.inputs[:position] if f.name == key), None)
                if earlier is None or earlier.when is not None or not earlier.choices():
                    raise ValueError(
                        f"field {field.name!r}: 'when' needs an earlier unconditional enum or bool field {key!r}"
                    )
                if value not in earlier.choices():
                    raise ValueError(f"field {field.name!r}: 'when' value {value!r} is not allowed for {key!r}")

    def _check_coverage(self, choices: Mapping[str, tuple[Choice, ...]]) -> None:
        """Every combination of the priced fields' values, unless unavailable, matches exactly one mode."""
        for combination in itertools.product(*choices.values()):
            chosen = dict(zip(choices, combination, strict=True))
            if any(matches(when, chosen) for when in self.unavailable):
                continue
            matching = sum(matches(mode.when, chosen) for mode in self.prices)
            if matching != 1:
                fields = ", ".join(repr(key) for key in choices) or "'prices'"
                shown = ", ".join(f"{k}={wire(v)}" for k, v in chosen.items()) or "any input"
                noun = "fields" if len(choices) > 1 else "field"
                raise ValueError(f"{noun} {fields}: {matching} price modes match {shown} (need exactly 1)")

    @property
    def sellable(self) -> bool:
        return self.family is not None and (bool(self.prices) or self.free)

    @property
    def needs_files(self) -> bool:
        """A required input is a file the bot must host for KIE (it needs PUBLIC_BASE_URL). Files asked
        only for some choices (Veo's reference photos) do not hide the model; that step says so."""
        return any(f.required and f.when is None and f.type in FILE_TYPES for f in self.inputs)

    @property
    def needs_public_url(self) -> bool:
        """Files to host for KIE, or a callback KIE insists on: without PUBLIC_BASE_URL it is not offered."""
        return self.needs_files or self.callback_required

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.inputs if f.name == name), None)

    def price_credits(self, params: Mapping[str, object]) -> Decimal | None:
        """KIE credits for this input (defaults applied), or None if the model or this input has no price."""
        values, _ = self._resolve(params)
        if any(matches(when, values) for when in self.unavailable):
            return None
        return next((mode.credits for mode in self.prices if matches(mode.when, values)), None)

    def asked(self, field: FieldSpec, params: Mapping[str, object]) -> bool:
        """Whether `field` applies to an order with `params` (its `when`, if any, holds; defaults apply)."""
        if field.when is None:
            return True
        chosen: dict[str, object] = {}
        for key in field.when:
            condition = self.field(key)
            value = params.get(key)
            if condition is None:
                return False
            try:
                chosen[key] = condition.coerce(condition.default if value is None else value)
            except ValueError:
                return False
        return matches(field.when, chosen)

    def conflict(self, params: Mapping[str, object]) -> dict[str, Choice] | None:
        """A combination KIE does not offer that the choices made in `params` already form (for the
        wizard, which refuses it at once instead of at the confirm screen); None if there is none."""
        values, _ = self._resolve(params, partial=True)
        made = {key: value for key, value in values.items() if params.get(key) not in (None, "")}
        return next((when for when in self.unavailable if matches(when, made)), None)

    def _resolve(self, params: Mapping[str, object], *, partial: bool = False) -> tuple[dict[str, object], list[str]]:
        """The input as KIE expects it (defaults applied, values coerced) and the problems found on the way.
        A conditional field whose condition does not hold is left out, whatever was given for it."""
        problems = [f"{name}: unknown field" for name in params if self.field(name) is None]
        values: dict[str, object] = {}
        for field in self.inputs:
            if not self.asked(field, params):
                continue
            value = params.get(field.name)
            if value is None or value == "" or value == [] or value == ():
                value = field.default
            if value is None:
                if field.required and not partial:
                    problems.append(f"{field.name}: is required")
                continue
            try:
                values[field.name] = field.coerce(value)
            except ValueError as exc:
                problems.append(f"{field.name}: {exc}")
        return values, problems


def validate_input(spec: ModelSpec, params: Mapping[str, object]) -> list[str]:
    """Human-readable problems with `params` for `spec`; an empty list means the input is valid."""
    values, problems = spec._resolve(params)
    for when in spec.unavailable:
        if matches(when, values):
            shown = " with ".join(f"{k}={wire(v)}" for k, v in when.items())
            problems.append(f"{shown} is not available for this model")
    return problems


def to_kie_input(spec: ModelSpec, params: Mapping[str, object]) -> dict[str, object]:
    """The exact `input` object for KIE's createTask; raises ValueError if `params` is invalid."""
    problems = validate_input(spec, params)
    if problems:
        raise ValueError("; ".join(problems))
    return spec._resolve(params)[0]
