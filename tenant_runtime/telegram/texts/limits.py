"""Free uses, open jobs, message rate and daily limits, and the notice a banned user sees."""

from __future__ import annotations

RU: dict[str, str] = {
    "limit.rate": "Слишком много сообщений подряд. Подождите минуту — потом я снова отвечу.",
    "ban.notice": "Доступ к боту ограничен. Если это ошибка, напишите в поддержку.",
    "limit.free_left": "Бесплатно: осталось {left} из {limit} сегодня",
    "limit.free_bonus": " · ещё {bonus} по промокодам",
    "limit.free_bonus_only": "Бесплатных генераций по промокодам: {bonus}",
    "limit.free_used": (
        "Бесплатные генерации на сегодня закончились: {used} из {limit}. Новые будут в {reset_at} "
        "({timezone}), через {wait}. Платные модели доступны как обычно."
    ),
    "limit.free_off": "Бесплатные генерации в этом боте отключены. Платные модели доступны как обычно.",
    "limit.open_jobs": (
        "Генераций в работе: {running} — это максимум одновременно. Дождитесь результата хотя бы одной "
        "(он придёт сюда) и нажмите «Сгенерировать» снова."
    ),
    "duration.hours": "{hours} ч {minutes} мин",
    "duration.minutes": "{minutes} мин",
}

EN: dict[str, str] = {
    "limit.rate": "Too many messages in a row. Please wait a minute, then I will answer again.",
    "ban.notice": "Access to this bot is restricted. If this is a mistake, please contact support.",
    "limit.free_left": "Free: {left} of {limit} left today",
    "limit.free_bonus": " · {bonus} more from promo codes",
    "limit.free_bonus_only": "Free generations from promo codes: {bonus}",
    "limit.free_used": (
        "You have used today's free generations: {used} of {limit}. New ones come at {reset_at} "
        "({timezone}), in {wait}. Paid models work as usual."
    ),
    "limit.free_off": "Free generations are switched off in this bot. Paid models work as usual.",
    "limit.open_jobs": (
        "Generations running: {running}, the most you can have at once. Wait for at least one result "
        "(it will arrive here), then tap “Generate” again."
    ),
    "duration.hours": "{hours} h {minutes} min",
    "duration.minutes": "{minutes} min",
}
