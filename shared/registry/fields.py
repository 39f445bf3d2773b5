"""A model's inputs: their types, limits and labels, how a value is checked and coerced for KIE, and the
choices (enum values, yes/no) that price modes and conditions name."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


class Frozen(BaseModel):
    """The registry's parts: an unknown key in the file is an error, and nothing changes once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Frozen):
    ru: str = Field(min_length=1)
    en: str = Field(min_length=1)


class FieldSpec(Frozen):
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
    when: dict[str, Choice] | None = None
    """Asked, required (if `required`) and sent only when these choices were made."""
    internal: bool = False
    """Filled by the bot (a follow-up's parent task), never asked nor shown."""

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        if self.type == "enum" and not self.values:
            raise ValueError("enum has no values")
        if self.when is not None and not self.when:
            raise ValueError("when must name at least one choice")
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


def matches(when: Mapping[str, Choice], values: Mapping[str, object]) -> bool:
    """Every choice of `when` was made in `values`, with the same type (True is not 1)."""
    return all(
        key in values and values[key] == value and type(values[key]) is type(value) for key, value in when.items()
    )


def wire(value: object) -> str:
    """A choice as the registry file spells it (true/false for a bool), for error messages."""
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _url(value: object) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value
