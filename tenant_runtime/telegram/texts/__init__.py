"""Every user-facing text, one catalog per language. Handlers never hold literal texts.

Texts are HTML (the bots' parse mode); values inserted into them are escaped by `text`. The catalogs
are built from one module per screen or topic (menu, wizard, generation, ...), each with its RU and EN.
"""

from __future__ import annotations

from tenant_runtime.telegram.texts.catalog import CATALOG, EN, RU
from tenant_runtime.telegram.texts.language import pick_language
from tenant_runtime.telegram.texts.render import Raw, text

__all__ = ["CATALOG", "EN", "RU", "Raw", "pick_language", "text"]
