"""The project's KIE.ai model registry (`models/registry.json`): what each model asks for, costs and returns.

A model's `prices` are modes chosen by the user's input: after defaults, the first mode whose `when`
(field -> value) is contained in the input applies. The loader guarantees that every combination of the
enum/bool fields named in any `when` matches exactly one mode, except the combinations listed in
`unavailable` (KIE does not offer them; they are invalid input). A model with no price that is not free
stays in the file but is not sellable.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.paths import data_dir

Category = Literal["image", "edit", "video", "upscale", "audio"]
CATEGORIES: tuple[Category, ...] = ("image", "edit", "video", "upscale", "audio")  # menu order
Output = Literal["image", "video", "audio", "text"]
FieldType = Literal["string", "int", "float", "bool", "enum", "image_url", "image_urls", "audio_url", "video_url"]
FILE_TYPES: frozenset[FieldType] = frozenset({"image_url", "image_urls", "audio_url", "video_url"})
Choice = str | bool  # a value a price mode's `when` can name: an enum value or a bool

# attribute -> the field types it applies to
_ATTR_TYPES: dict[str, frozenset[str]] = {
    "values": frozenset({"enum"}),
    "min": frozenset({"int", "float"}),
    "max": frozenset({"int", "float"}),
    "min_length": frozenset({"string"}),
    "max_length": frozenset({"string"}),
    "max_items": frozenset({"image_urls"}),
}


class RegistryError(Exception):
    """The registry file is unreadable or inconsistent; the message names the model and the field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Frozen):
    ru: str = Field(min_length=1)
    en: str = Field(min_length=1)


class FieldSpec(_Frozen):
    """One input of a model; `name` is the key KIE expects in `input`."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    type: FieldType
    required: bool = False
    label: Text
    values: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    min_length: int | None = Field(default=None, ge=1)
    max_length: int | None = Field(default=None, ge=1)
    max_items: int | None = Field(default=None, ge=1)
    default: str | bool | int | float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        if self.type == "enum" and not self.values:
            raise ValueError("enum has no values")
        misplaced = [a for a, types in _ATTR_TYPES.items() if getattr(self, a) is not None and self.type not in types]
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)} not allowed for type {self.type}")
        if self.default is not None:
            try:
                self.coerce(self.default)
            except ValueError as exc:
                raise ValueError(f"default {self.default!r} is invalid: {exc}") from None
        return self

    def choices(self) -> tuple[Choice, ...]:
        """The values a price condition can name for this field (empty unless enum or bool)."""
        if self.type == "bool":
            return (False, True)
        return self.values or ()

    def coerce(self, value: object) -> object:
        """`value` as KIE expects it for this field; raises ValueError saying what is wrong."""
        if self.type == "string":
            if not isinstance(value, str):
                raise ValueError("must be text")
            if self.max_length is not None and len(value) > self.max_length:
                raise ValueError(f"must be at most {self.max_length} characters (got {len(value)})")
            if self.min_length is not None and len(value) < self.min_length:
                raise ValueError(f"must be at least {self.min_length} characters")
            return value
        if self.type in ("int", "float"):
            return self._number(value)
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            if value in ("true", "false"):
                return value == "true"
            raise ValueError("must be yes or no")
        if self.type == "enum":
            text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
            if text not in (self.values or ()):
                raise ValueError(f"must be one of {', '.join(self.values or ())}")
            return text
        if self.type == "image_urls":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list | tuple) or not items:
                raise ValueError("must be a list of URLs")
            if self.max_items is not None and len(items) > self.max_items:
                raise ValueError(f"at most {self.max_items} files allowed (got {len(items)})")
            return [_url(item) for item in items]
        return _url(value)

    def _number(self, value: object) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError("must be a number")
        # Compare as integers, not through float: above 2**53 floats lose the difference.
        if self.type == "int" and isinstance(value, float) and not value.is_integer():
            raise ValueError("must be a whole number")
        try:
            number = int(value) if self.type == "int" else float(value)
        except (ValueError, OverflowError):
            raise ValueError("must be a whole number" if self.type == "int" else "must be a number") from None
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        if self.min is not None and number < self.min:
            raise ValueError(f"must be at least {self.min:g}")
        if self.max is not None and number > self.max:
            raise ValueError(f"must be at most {self.max:g}")
        return number


class PriceMode(_Frozen):
    credits: Decimal = Field(gt=0)
    when: dict[str, Choice] = Field(default_factory=dict)


class ModelSpec(_Frozen):
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
    # "jobs": created through /api/v1/jobs/createTask, the one flow the product runs. Models that KIE
    # serves on dedicated endpoints (veo, suno, midjourney, runway, …) are kept but not sold yet.
    api: Literal["jobs", "dedicated"] = "jobs"

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        names = [f.name for f in self.inputs]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"field {twice[0]!r}: defined twice")
        conditions = [mode.when for mode in self.prices] + list(self.unavailable)
        choices: dict[str, tuple[Choice, ...]] = {}
        for key in sorted({key for when in conditions for key in when}):
            field = self.field(key)
            if field is None or not field.choices():
                raise ValueError(f"field {key!r}: a price condition needs an enum or bool input of that name")
            if not field.required and field.default is None:
                raise ValueError(f"field {key!r}: used by a price condition, so it must be required or have a default")
            for when in conditions:
                if key in when and when[key] not in field.choices():
                    raise ValueError(f"field {key!r}: price condition value {when[key]!r} is not allowed")
            choices[key] = field.choices()
        if self.prices:
            self._check_coverage(choices)
        return self

    def _check_coverage(self, choices: Mapping[str, tuple[Choice, ...]]) -> None:
        """Every combination of the priced fields' values, unless unavailable, matches exactly one mode."""
        for combination in itertools.product(*choices.values()):
            chosen = dict(zip(choices, combination, strict=True))
            if any(_matches(when, chosen) for when in self.unavailable):
                continue
            matching = sum(_matches(mode.when, chosen) for mode in self.prices)
            if matching != 1:
                fields = ", ".join(repr(key) for key in choices) or "'prices'"
                shown = ", ".join(f"{k}={_wire(v)}" for k, v in chosen.items()) or "any input"
                noun = "fields" if len(choices) > 1 else "field"
                raise ValueError(f"{noun} {fields}: {matching} price modes match {shown} (need exactly 1)")

    @property
    def sellable(self) -> bool:
        return self.api == "jobs" and (bool(self.prices) or self.free)

    @property
    def needs_files(self) -> bool:
        """A required input is a file the bot must host for KIE (it needs PUBLIC_BASE_URL)."""
        return any(f.required and f.type in FILE_TYPES for f in self.inputs)

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.inputs if f.name == name), None)

    def price_credits(self, params: Mapping[str, object]) -> Decimal | None:
        """KIE credits for this input (defaults applied), or None if the model or this input has no price."""
        values, _ = self._resolve(params)
        if any(_matches(when, values) for when in self.unavailable):
            return None
        return next((mode.credits for mode in self.prices if _matches(mode.when, values)), None)

    def _resolve(self, params: Mapping[str, object]) -> tuple[dict[str, object], list[str]]:
        """The input as KIE expects it (defaults applied, values coerced) and the problems found on the way."""
        problems = [f"{name}: unknown field" for name in params if self.field(name) is None]
        values: dict[str, object] = {}
        for field in self.inputs:
            value = params.get(field.name)
            if value is None or value == "" or value == [] or value == ():
                value = field.default
            if value is None:
                if field.required:
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
        if _matches(when, values):
            shown = " with ".join(f"{k}={_wire(v)}" for k, v in when.items())
            problems.append(f"{shown} is not available for this model")
    return problems


def to_kie_input(spec: ModelSpec, params: Mapping[str, object]) -> dict[str, object]:
    """The exact `input` object for KIE's createTask; raises ValueError if `params` is invalid."""
    problems = validate_input(spec, params)
    if problems:
        raise ValueError("; ".join(problems))
    return spec._resolve(params)[0]


class Registry:
    """The loaded registry. Immutable, so the views every menu asks for are computed once here."""

    def __init__(self, models: Iterable[ModelSpec], credit_usd: Decimal) -> None:
        self.models = tuple(models)
        self.credit_usd = credit_usd
        self._by_id = {model.id: model for model in self.models}
        self._sellable = tuple(model for model in self.models if model.sellable)
        self._by_category: dict[str, tuple[ModelSpec, ...]] = {
            category: tuple(model for model in self._sellable if model.category == category) for category in CATEGORIES
        }

    def get(self, model_id: str) -> ModelSpec | None:
        return self._by_id.get(model_id)

    def sellable(self) -> tuple[ModelSpec, ...]:
        """Models that can be offered: priced or free."""
        return self._sellable

    def categories(self) -> list[tuple[Category, int]]:
        """(category id, number of sellable models) for each category that has any, in menu order."""
        return [(category, len(self._by_category[category])) for category in CATEGORIES if self._by_category[category]]

    def by_category(self, category: str) -> tuple[ModelSpec, ...]:
        """The sellable models of `category`, in file order."""
        return self._by_category.get(category, ())


class _RegistryFile(_Frozen):
    version: Literal[1]
    credit_usd: Decimal = Field(gt=0)
    notes: tuple[str, ...] = Field(default=(), alias="_notes")
    models: tuple[dict[str, Any], ...]


def load_registry(path: Path | None = None) -> Registry:
    """Read and check the registry; any inconsistency raises RegistryError naming the model and field."""
    path = path or data_dir("models") / "registry.json"
    where = f"{path.parent.name}/{path.name}"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        document = _RegistryFile.model_validate(raw)
    except (OSError, ValueError) as exc:  # ValidationError is a ValueError
        raise RegistryError(f"{where}: {exc}") from exc
    models: list[ModelSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(document.models):
        model_id = entry.get("id", f"#{index}")
        try:
            spec = ModelSpec.model_validate(entry)
        except ValidationError as exc:
            raise RegistryError(f"{where}: model {model_id!r} {_describe(exc, entry)}") from exc
        if spec.id in seen:
            raise RegistryError(f"{where}: model {spec.id!r} field 'id': duplicate model id")
        seen.add(spec.id)
        models.append(spec)
    return Registry(models, document.credit_usd)


def _describe(exc: ValidationError, entry: Mapping[str, Any]) -> str:
    """Pydantic errors as "field 'name': problem", naming inputs by their `name`."""
    parts = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        loc = list(error["loc"])
        if not loc:  # a model-level check: its message already names the field
            parts.append(message)
            continue
        if loc[0] == "inputs" and len(loc) > 1 and isinstance(loc[1], int):
            inputs = entry.get("inputs") or []
            item = inputs[loc[1]] if loc[1] < len(inputs) else {}
            name = item.get("name", f"inputs[{loc[1]}]") if isinstance(item, dict) else f"inputs[{loc[1]}]"
            attr = ".".join(str(p) for p in loc[2:])
            parts.append(f"field {name!r}{f' ({attr})' if attr else ''}: {message}")
        else:
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
            parts.append(f"field {path!r}: {message}")
    return "; ".join(parts)


def _matches(when: Mapping[str, Choice], values: Mapping[str, object]) -> bool:
    return all(
        key in values and values[key] == value and type(values[key]) is type(value) for key, value in when.items()
    )


def _wire(value: object) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _url(value: object) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value
