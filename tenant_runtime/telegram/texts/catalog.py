"""The two catalogs, assembled from one module per screen or topic; every key exists in both."""

from __future__ import annotations

from tenant_runtime.config import Language
from tenant_runtime.telegram.texts import (
    account,
    admin,
    broadcasts,
    errors,
    generation,
    limits,
    menu,
    payments,
    promo,
    wizard,
)

_TOPICS = (menu, wizard, generation, limits, promo, account, payments, errors, admin, broadcasts)

RU: dict[str, str] = {key: value for topic in _TOPICS for key, value in topic.RU.items()}
EN: dict[str, str] = {key: value for topic in _TOPICS for key, value in topic.EN.items()}
CATALOG: dict[Language, dict[str, str]] = {"ru": RU, "en": EN}
