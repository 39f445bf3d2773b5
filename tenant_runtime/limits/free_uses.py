"""Which free allowance a free job used (the `jobs.free_use` column)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FreeUse"]


class FreeUse(StrEnum):
    DAILY = "daily"  # today's free quota
    BONUS = "bonus"  # free generations granted by a promo code
