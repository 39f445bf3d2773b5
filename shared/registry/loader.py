"""Reading `models/registry.json` and refusing it, naming the model and field, when it is inconsistent."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from shared.paths import data_dir
from shared.registry.catalog import Registry
from shared.registry.fields import Frozen
from shared.registry.spec import ModelSpec


class RegistryError(Exception):
    """The registry file is unreadable or inconsistent; the message names the model and the field."""


class _RegistryFile(Frozen):
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
    for spec in models:
        unknown = sorted(set(spec.follow_up.of) - seen) if spec.follow_up else []
        if unknown:
            raise RegistryError(f"{where}: model {spec.id!r} field 'follow_up.of': unknown model {unknown[0]!r}")
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
