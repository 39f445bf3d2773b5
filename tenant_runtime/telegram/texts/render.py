"""A text from the catalog, in the user's language, with the values put in safely."""

from __future__ import annotations

import html

from tenant_runtime.config import Language
from tenant_runtime.telegram.texts.catalog import CATALOG


def text(lang: Language, key: str, /, **values: object) -> str:
    """The text `key` in `lang` with `values` HTML-escaped (they may come from users)."""
    template = CATALOG[lang].get(key) or CATALOG["ru"][key]
    if not values:
        return template
    return template.format(**{k: v if isinstance(v, Raw) else html.escape(str(v)) for k, v in values.items()})


class Raw(str):
    """A value already formatted as HTML (e.g. a list of lines built from other texts)."""

    __slots__ = ()
