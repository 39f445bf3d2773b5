"""The dedicated endpoint families the fake KIE speaks, by name."""

from __future__ import annotations

from sandbox.kie_families.base import Action, FakeFamily, Refusal, TaskView
from sandbox.kie_families.flux import Flux
from sandbox.kie_families.gpt4o import Gpt4o
from sandbox.kie_families.midjourney import Midjourney
from sandbox.kie_families.runway import Runway
from sandbox.kie_families.suno import Suno
from sandbox.kie_families.veo import Veo

__all__ = ["FAMILIES", "Action", "FakeFamily", "Refusal", "TaskView"]

FAMILIES: dict[str, FakeFamily] = {
    family.name: family for family in (Gpt4o(), Flux(), Veo(), Suno(), Runway(), Midjourney())
}
