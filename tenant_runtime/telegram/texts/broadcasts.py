"""An admin's broadcasts: composing, confirming, progress and the report."""

from __future__ import annotations

RU: dict[str, str] = {
    "cast.busy": "Уже идёт рассылка #{id}. Дождитесь её окончания или отмените её.",
    "cast.ask_content": (
        "Отправьте сообщение для рассылки: текст (с форматированием), фото или видео с подписью. /cancel — отменить."
    ),
    "cast.empty": "В сообщении нечего рассылать. Отправьте текст, фото или видео.",
    "cast.unsupported": "Рассылать можно текст, фото или видео с подписью. Отправьте одно из них.",
    "cast.too_long": (
        "Слишком длинно: {length} символов, а Telegram разрешает боту не больше {limit}. Сократите и отправьте снова."
    ),
    "cast.ask_button": (
        "Добавить кнопку-ссылку? Отправьте <code>Текст кнопки | https://адрес</code> или нажмите «Без кнопки»."
    ),
    "cast.btn.no_button": "Без кнопки",
    "cast.button_format": "Не понял. Формат: <code>Текст кнопки | https://адрес</code>.",
    "cast.button_text": "Текст кнопки — от 1 до 64 символов в одну строку.",
    "cast.button_url": "Ссылка не подходит: нужен адрес вида https://example.com или tg://…",
    "cast.preview": "👆 Так сообщение увидят получатели. Кому отправить?",
    "cast.audience.all": "Всем ({count})",
    "cast.audience.paid": "Оплатившим ({count})",
    "cast.audience.active": "Активным за 30 дней ({count})",
    "cast.confirm": "Отправить {count} получателям? До 25 сообщений в секунду: примерно {eta}.",
    "cast.btn.send": "✅ Отправить",
    "cast.nobody": "В этой аудитории никого нет: рассылать некому. Ничего не отправлено.",
    "cast.dropped": "Рассылка отменена, ничего не отправлено.",
    "cast.progress": (
        "📣 Рассылка #{id}: {state}\nОтправлено: {sent} · не доставлено: {failed} · заблокировали бота: {blocked}"
        "{unknown}\nОсталось: {left} из {total}{eta}"
    ),
    "cast.progress_unknown": " · неизвестно, дошло ли: {count}",
    "cast.progress_eta": " · ещё ~{eta}",
    "cast.state.running": "идёт",
    "cast.state.paused": "на паузе",
    "cast.state.cancelled": "отменена",
    "cast.state.done": "завершена",
    "cast.btn.pause": "⏸ Пауза",
    "cast.btn.resume": "▶️ Продолжить",
    "cast.btn.stop": "⏹ Отменить рассылку",
    "cast.report": (
        "✅ Рассылка #{id} завершена за {duration}: доставлено {sent} из {total}, не доставлено {failed}, "
        "заблокировали бота {blocked}{unknown}."
    ),
    "cast.report_cancelled": "⏹ Рассылка #{id} отменена: доставлено {sent} из {total}, не отправлено {left}.",
    "cast.not_changed": "Рассылка #{id} уже {state}.",
}

EN: dict[str, str] = {
    "cast.busy": "Broadcast #{id} is under way. Wait for it to finish or cancel it.",
    "cast.ask_content": (
        "Send the message to broadcast: text (with formatting), or a photo or video with a caption. /cancel to stop."
    ),
    "cast.empty": "There is nothing to broadcast in this message. Send text, a photo or a video.",
    "cast.unsupported": "A broadcast can be text, or a photo or video with a caption. Please send one of them.",
    "cast.too_long": (
        "Too long: {length} characters, and Telegram allows a bot at most {limit}. Shorten it and send it again."
    ),
    "cast.ask_button": "Add a link button? Send <code>Button text | https://address</code> or tap “No button”.",
    "cast.btn.no_button": "No button",
    "cast.button_format": "Not understood. Format: <code>Button text | https://address</code>.",
    "cast.button_text": "Button text: 1 to 64 characters on one line.",
    "cast.button_url": "This link does not fit: an address like https://example.com or tg://… is needed.",
    "cast.preview": "👆 This is what recipients will see. Who should get it?",
    "cast.audience.all": "Everyone ({count})",
    "cast.audience.paid": "Users who paid ({count})",
    "cast.audience.active": "Active in 30 days ({count})",
    "cast.confirm": "Send to {count} recipients? Up to 25 messages a second: about {eta}.",
    "cast.btn.send": "✅ Send",
    "cast.nobody": "Nobody is in this audience: nothing to send. Nothing was sent.",
    "cast.dropped": "Broadcast cancelled, nothing was sent.",
    "cast.progress": (
        "📣 Broadcast #{id}: {state}\nSent: {sent} · failed: {failed} · blocked the bot: {blocked}"
        "{unknown}\nLeft: {left} of {total}{eta}"
    ),
    "cast.progress_unknown": " · unknown whether delivered: {count}",
    "cast.progress_eta": " · ~{eta} more",
    "cast.state.running": "running",
    "cast.state.paused": "paused",
    "cast.state.cancelled": "cancelled",
    "cast.state.done": "finished",
    "cast.btn.pause": "⏸ Pause",
    "cast.btn.resume": "▶️ Resume",
    "cast.btn.stop": "⏹ Cancel broadcast",
    "cast.report": (
        "✅ Broadcast #{id} finished in {duration}: delivered {sent} of {total}, failed {failed}, "
        "blocked the bot {blocked}{unknown}."
    ),
    "cast.report_cancelled": "⏹ Broadcast #{id} cancelled: delivered {sent} of {total}, not sent {left}.",
    "cast.not_changed": "Broadcast #{id} is {state} already.",
}
