"""KIE's endpoint families behind one interface: the jobs API and each dedicated endpoint."""

from __future__ import annotations

from shared.registry import ModelSpec
from tenant_runtime.kie.families.base import Family, TaskRef, TaskRequest
from tenant_runtime.kie.families.flux_kontext import FluxKontext
from tenant_runtime.kie.families.gpt4o_image import Gpt4oImage
from tenant_runtime.kie.families.jobs import JobsFamily
from tenant_runtime.kie.families.midjourney import Midjourney
from tenant_runtime.kie.families.report import TaskReport
from tenant_runtime.kie.families.runway import Runway
from tenant_runtime.kie.families.suno import Suno
from tenant_runtime.kie.families.veo import Veo

__all__ = ["FAMILIES", "Family", "TaskRef", "TaskReport", "TaskRequest", "family_of"]

FAMILIES: dict[str, Family] = {
    family.name: family for family in (JobsFamily(), Gpt4oImage(), FluxKontext(), Veo(), Suno(), Runway(), Midjourney())
}


def family_of(spec: ModelSpec | None) -> Family:
    """The family serving `spec`; the jobs API for a model the registry no longer knows (its jobs were
    created through it before this family existed)."""
    if spec is None or spec.family is None:
        return FAMILIES["jobs"]
    return FAMILIES[spec.family]
