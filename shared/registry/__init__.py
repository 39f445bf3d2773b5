"""The project's KIE.ai model registry (`models/registry.json`): what each model asks for, costs and returns.

A model's `prices` are modes chosen by the user's input: after defaults, the first mode whose `when`
(field -> value) is contained in the input applies. The loader guarantees that every combination of the
enum/bool fields named in any `when` matches exactly one mode, except the combinations listed in
`unavailable` (KIE does not offer them; they are invalid input). A model with no price that is not free
stays in the file but is not sellable.

A model's `family` names the KIE endpoint family that serves it: "jobs" (`/api/v1/jobs/createTask`)
or a dedicated endpoint (veo, suno, midjourney, runway, flux_kontext, gpt4o_image); null means KIE
serves it on an endpoint this product does not speak, so it is not sold. A `follow_up` model is not
in the catalog: it acts on a finished job of one of the models it names (Midjourney's upscale, Veo's
1080p), is confirmed and paid as a job of its own, and its `internal` inputs are filled by the bot.
A field with `when` is asked and sent only when those choices were made (Suno's lyrics in custom mode).
"""

from __future__ import annotations

from shared.registry.catalog import Registry
from shared.registry.fields import FILE_TYPES, Choice, FieldSpec, FieldType, Text
from shared.registry.loader import RegistryError, load_registry
from shared.registry.spec import (
    CATEGORIES,
    Category,
    Family,
    FollowUp,
    ModelSpec,
    Output,
    PriceMode,
    to_kie_input,
    validate_input,
)

__all__ = [
    "CATEGORIES",
    "FILE_TYPES",
    "Category",
    "Choice",
    "Family",
    "FieldSpec",
    "FieldType",
    "FollowUp",
    "ModelSpec",
    "Output",
    "PriceMode",
    "Registry",
    "RegistryError",
    "Text",
    "load_registry",
    "to_kie_input",
    "validate_input",
]
