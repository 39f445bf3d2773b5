"""Every user-facing text, one catalog per language. Handlers never hold literal texts."""

from __future__ import annotations

from tenant_runtime.config import Language

RU: dict[str, str] = {
    "error.generic": "Что-то пошло не так, с вас ничего не списано. Попробуйте ещё раз. Код: {cid}",
    "error.unavailable": "Сервис временно недоступен. Ваше сообщение будет обработано, как только он вернётся.",
}

EN: dict[str, str] = {
    "error.generic": "Something went wrong, nothing was charged. Please try again. Code: {cid}",
    "error.unavailable": "The service is temporarily unavailable. Your message will be handled as soon as it is back.",
}

CATALOG: dict[Language, dict[str, str]] = {"ru": RU, "en": EN}


def text(lang: Language, key: str, **values: object) -> str:
    template = CATALOG[lang].get(key) or CATALOG["ru"][key]
    return template.format(**values) if values else template
