"""Every text of the shop features (limits, bans, promo codes, broadcasts) exists in Russian and English
with the same placeholders, so neither language can fail to format or lose a number."""

from __future__ import annotations

import string

import pytest

from tenant_runtime.telegram.texts import EN, RU, text

PREFIXES = ("limit.", "duration.", "ban.", "promo.", "cast.", "admin.promo", "admin.btn.", "admin.ask_ban", "admin.ban")
SHOP_KEYS = sorted({*(k for k in RU if k.startswith(PREFIXES)), "fail.banned", "admin.banned", "admin.unbanned"})


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_the_catalogs_have_the_same_keys() -> None:
    assert set(RU) == set(EN)


@pytest.mark.parametrize("key", SHOP_KEYS)
def test_shop_texts_have_the_same_placeholders_and_format(key: str) -> None:
    assert _fields(RU[key]) == _fields(EN[key]), key
    values = dict.fromkeys(_fields(RU[key]), "<x>")
    for lang in ("ru", "en"):
        shown = text(lang, key, **values)  # type: ignore[arg-type]
        assert "{" not in shown and "<x>" not in shown, "values are escaped"
