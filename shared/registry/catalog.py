"""The loaded registry and the views of it every menu asks for."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from shared.registry.spec import CATEGORIES, Category, ModelSpec


class Registry:
    """The loaded registry. Immutable, so the views every menu asks for are computed once here."""

    def __init__(self, models: Iterable[ModelSpec], credit_usd: Decimal) -> None:
        self.models = tuple(models)
        self.credit_usd = credit_usd
        self._by_id = {model.id: model for model in self.models}
        self._sellable = tuple(model for model in self.models if model.sellable)
        catalog = tuple(model for model in self._sellable if model.follow_up is None)
        self._by_category: dict[str, tuple[ModelSpec, ...]] = {
            category: tuple(model for model in catalog if model.category == category) for category in CATEGORIES
        }
        self._follow_ups: dict[str, tuple[ModelSpec, ...]] = {
            model.id: tuple(m for m in self._sellable if m.follow_up is not None and model.id in m.follow_up.of)
            for model in self.models
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
        """The sellable catalog models of `category` (follow-ups are not in the catalog), in file order."""
        return self._by_category.get(category, ())

    def follow_ups(self, model_id: str) -> tuple[ModelSpec, ...]:
        """The sellable follow-ups offered on a finished job of `model_id`."""
        return self._follow_ups.get(model_id, ())
