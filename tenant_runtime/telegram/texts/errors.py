"""What a user sees when something failed on our side."""

from __future__ import annotations

RU: dict[str, str] = {
    "error.generic": "Что-то пошло не так, с вас ничего не списано. Попробуйте ещё раз. Код: {cid}",
    "error.unavailable": "Сервис временно недоступен. Ваше сообщение будет обработано, как только он вернётся.",
}

EN: dict[str, str] = {
    "error.generic": "Something went wrong, nothing was charged. Please try again. Code: {cid}",
    "error.unavailable": "The service is temporarily unavailable. Your message will be handled as soon as it is back.",
}
