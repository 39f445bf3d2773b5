"""Every user-facing text, one catalog per language. Handlers never hold literal texts.

Texts are HTML (the bots' parse mode); values inserted into them are escaped by `text`.
"""

from __future__ import annotations

import html

from tenant_runtime.config import Language

RU: dict[str, str] = {
    # menu
    "menu.title": "<b>{shop}</b>\nВыберите, что создать. Баланс: <b>{balance}</b>",
    "menu.categories": "Выберите категорию:",
    "btn.balance": "💰 Баланс",
    "btn.topup": "⭐ Пополнить",
    "btn.history": "🧾 История",
    "btn.help": "❓ Помощь",
    "btn.language": "🌐 Language: English",
    "btn.menu": "🏠 Главное меню",
    "btn.back": "⬅️ Назад",
    "btn.cancel": "✖️ Отмена",
    "btn.prev": "◀️",
    "btn.next": "▶️",
    "btn.choose": "✅ Выбрать",
    "btn.skip": "⏭ Пропустить (по умолчанию)",
    "btn.yes": "Да",
    "btn.no": "Нет",
    "btn.generate": "🚀 Сгенерировать",
    "btn.edit": "✏️ Изменить",
    "btn.repeat": "🔁 Повторить",
    "btn.change": "✏️ Изменить параметры",
    "btn.retry": "🔁 Попробовать снова",
    "btn.done_images": "➡️ Продолжить",
    "cat.image": "🖼 Изображения",
    "cat.edit": "🪄 Редактирование",
    "cat.video": "🎬 Видео",
    "cat.upscale": "🔍 Улучшение качества",
    "cat.audio": "🎧 Аудио",
    "catalog.title": "{category}: выберите модель (стр. {page}/{pages})",
    "catalog.model_button": "{title} · {price}",
    "catalog.free": "бесплатно",
    "catalog.from": "от {price}",
    "card": "<b>{title}</b>\n{description}\n\nЦена: <b>{price}</b>\nНужно: {needs}",
    "card.unavailable": "Эта модель сейчас недоступна. Выберите другую.",
    # wizard
    "wizard.step": "Шаг {step}/{steps}. <b>{label}</b>",
    "wizard.ask_text": "Отправьте текст (до {max} символов).",
    "wizard.ask_number": "Отправьте число от {min} до {max}.",
    "wizard.ask_choice": "Выберите вариант:",
    "wizard.ask_image": "Отправьте фото.",
    "wizard.ask_images": "Отправьте фото (до {max}). Получено: {count}.",
    "wizard.ask_audio": "Отправьте аудиофайл или голосовое сообщение.",
    "wizard.ask_video": "Отправьте видео.",
    "wizard.optional": "Необязательно — можно пропустить.",
    "wizard.too_long": "Слишком длинный текст: {length} символов, максимум {max}. Сократите и отправьте снова.",
    "wizard.too_short": "Слишком короткий текст: минимум {min} символа.",
    "wizard.not_number": "Это не число. Отправьте число от {min} до {max}.",
    "wizard.out_of_range": "Число должно быть от {min} до {max}.",
    "wizard.need_photo": "Здесь нужно фото. Отправьте изображение (как фото или файл).",
    "wizard.need_audio": "Здесь нужен аудиофайл или голосовое сообщение.",
    "wizard.need_video": "Здесь нужно видео.",
    "wizard.use_buttons": "Выберите вариант кнопкой ниже.",
    "wizard.no_media_host": "Эта модель требует загрузки файлов, а она недоступна в этом боте.",
    "wizard.cancelled": "Отменено. С вас ничего не списано.",
    "confirm": "<b>{title}</b>\n{params}\n\nЦена: <b>{price}</b>\nБаланс после: <b>{after}</b>",
    "confirm.short": "Недостаточно средств: не хватает <b>{missing}</b> (цена {price}, баланс {balance}).",
    "confirm.started_already": "Генерация уже запущена.",
    # generation
    "job.queued": "⏳ {title}: в очереди…",
    "job.progress": "⏳ {title}: {state} · {elapsed} (обычно ~{eta})",
    "job.state.waiting": "в очереди",
    "job.state.queuing": "в очереди",
    "job.state.generating": "генерируется",
    "job.done": "✅ {title}: готово",
    "job.result_caption": "✅ {title}",
    "job.result_link": "✅ {title}: результат готов, но Telegram не принял файл. Скачайте по ссылке:\n{url}",
    "job.failed": "❌ {title}: {reason}\n{money}",
    "fail.content": "запрос отклонён фильтром контента. Измените описание.",
    "fail.busy": "сервис генерации перегружен.",
    "fail.timeout": "генерация не уложилась во время.",
    "fail.invalid": "модель не приняла параметры.",
    "fail.unavailable": "сервис генерации временно недоступен.",
    "fail.provider": "генерация не удалась.",
    "money.returned": "Деньги возвращены на баланс.",
    "money.nothing": "С вас ничего не списано.",
    # balance, history, help
    "balance": "💰 Баланс: <b>{available}</b>\nЗарезервировано под генерации: {held}",
    "history.title": "🧾 Последние генерации (стр. {page}):",
    "history.empty": "Генераций пока нет.",
    "history.row": "{date} · {title} · {status} · {price}",
    "history.topups": "Пополнения:",
    "history.topup_row": "{date} · +{amount} ({kind})",
    "status.created": "создана",
    "status.submitted": "в работе",
    "status.succeeded": "готова",
    "status.delivered": "готова",
    "status.failed": "ошибка, деньги возвращены",
    "help": (
        "Я создаю изображения, видео и аудио с помощью нейросетей.\n"
        "1. Выберите категорию и модель.\n2. Ответьте на пару вопросов.\n3. Подтвердите цену — готово.\n\n"
        "Команды: /start — меню, /balance — баланс, /history — история, /cancel — отмена, /help — помощь."
    ),
    "hint": "Не понял сообщение. Выберите действие в меню:",
    "unknown_command": "Неизвестная команда. Откройте меню: /start",
    "stale": "Это меню устарело — вот актуальное.",
    "language.set": "Язык: русский.",
    "welcome_bonus": "🎁 Вам начислен приветственный бонус: {amount}.",
    "referral_bonus": "🎁 По вашей ссылке пришёл новый пользователь: +{amount}.",
    "referral_link": "Ваша ссылка для друзей: {link}",
    # payments
    "topup.title": "Пополнение баланса звёздами Telegram. Выберите пакет:",
    "topup.package": "{stars} ⭐ → {amount}",
    "topup.invoice_title": "Пополнение на {amount}",
    "topup.invoice_description": "{stars} звёзд → {amount} на баланс в {shop}",
    "topup.done": "✅ Баланс пополнен на {amount}. Теперь: {balance}",
    "topup.bad_payload": "Счёт устарел. Откройте пополнение заново.",
    "topup.unverified": "Оплата получена, но не прошла проверку. Напишите в поддержку, код платежа: {charge}",
    # errors
    "error.generic": "Что-то пошло не так, с вас ничего не списано. Попробуйте ещё раз. Код: {cid}",
    "error.unavailable": "Сервис временно недоступен. Ваше сообщение будет обработано, как только он вернётся.",
    # admin
    "admin.title": (
        "<b>Админ-панель</b>\nПользователей: {users}\nГенераций сегодня: ✅ {ok} · ❌ {failed} · ⏳ {open}\n"
        "Выручка сегодня: {revenue}\nКредиты KIE: {credits}\nНаценка: ×{markup}"
    ),
    "admin.btn.user": "🔎 Пользователь",
    "admin.btn.credit": "➕ Начислить",
    "admin.btn.debit": "➖ Списать",
    "admin.btn.models": "🧩 Модели",
    "admin.btn.markup": "📈 Наценка",
    "admin.btn.refund": "↩️ Возврат звёзд",
    "admin.ask_user": "Отправьте Telegram id пользователя.",
    "admin.ask_adjust": "Отправьте: <code>id сумма причина</code>, например <code>12345 150 компенсация</code>.",
    "admin.ask_markup": "Отправьте новую наценку (от 1 до 100), сейчас ×{markup}.",
    "admin.ask_refund": "Отправьте id платежа (telegram_payment_charge_id).",
    "admin.user": "Пользователь {user_id}: баланс {available}, в резерве {held}, генераций {jobs}, с {since}.",
    "admin.no_user": "Пользователь {user_id} не найден в этом боте.",
    "admin.bad_adjust": "Не понял. Формат: <code>id сумма причина</code>; сумма больше нуля, причина обязательна.",
    "admin.credited": "Начислено {amount} пользователю {user_id}. Баланс: {balance}.",
    "admin.debited": "Списано {amount} у пользователя {user_id}. Баланс: {balance}.",
    "admin.insufficient": "Нельзя списать: у пользователя доступно только {available}.",
    "admin.markup_set": "Наценка теперь ×{markup}.",
    "admin.bad_markup": "Наценка должна быть числом от 1 до 100.",
    "admin.models": "Модели (нажмите, чтобы включить/выключить), стр. {page}/{pages}:",
    "admin.refunded": "Возврат {stars} ⭐ выполнен, с баланса списано {amount}.",
    "admin.refund_refused": "Возврат невозможен: {reason}",
    "admin.refund_failed": "Telegram не выполнил возврат; баланс восстановлен.",
    "admin.refund_unknown": "Telegram не ответил: неизвестно, прошёл ли возврат. Платёж отмечен «в обработке»; бот сам уточнит у Telegram через несколько минут.",
    "alert.kie_credits": "⚠️ На ключе KIE закончились кредиты: генерации в боте не работают. Пополните баланс KIE.",
    "alert.kie_auth": "⚠️ KIE отклонил API-ключ бота: генерации не работают. Обновите ключ.",
}

EN: dict[str, str] = {
    "menu.title": "<b>{shop}</b>\nChoose what to create. Balance: <b>{balance}</b>",
    "menu.categories": "Choose a category:",
    "btn.balance": "💰 Balance",
    "btn.topup": "⭐ Top up",
    "btn.history": "🧾 History",
    "btn.help": "❓ Help",
    "btn.language": "🌐 Язык: русский",
    "btn.menu": "🏠 Main menu",
    "btn.back": "⬅️ Back",
    "btn.cancel": "✖️ Cancel",
    "btn.prev": "◀️",
    "btn.next": "▶️",
    "btn.choose": "✅ Choose",
    "btn.skip": "⏭ Skip (use default)",
    "btn.yes": "Yes",
    "btn.no": "No",
    "btn.generate": "🚀 Generate",
    "btn.edit": "✏️ Edit",
    "btn.repeat": "🔁 Repeat",
    "btn.change": "✏️ Change parameters",
    "btn.retry": "🔁 Try again",
    "btn.done_images": "➡️ Continue",
    "cat.image": "🖼 Images",
    "cat.edit": "🪄 Editing",
    "cat.video": "🎬 Video",
    "cat.upscale": "🔍 Upscale",
    "cat.audio": "🎧 Audio",
    "catalog.title": "{category}: choose a model (page {page}/{pages})",
    "catalog.model_button": "{title} · {price}",
    "catalog.free": "free",
    "catalog.from": "from {price}",
    "card": "<b>{title}</b>\n{description}\n\nPrice: <b>{price}</b>\nNeeds: {needs}",
    "card.unavailable": "This model is not available right now. Please choose another.",
    "wizard.step": "Step {step}/{steps}. <b>{label}</b>",
    "wizard.ask_text": "Send a text (up to {max} characters).",
    "wizard.ask_number": "Send a number from {min} to {max}.",
    "wizard.ask_choice": "Choose an option:",
    "wizard.ask_image": "Send a photo.",
    "wizard.ask_images": "Send photos (up to {max}). Received: {count}.",
    "wizard.ask_audio": "Send an audio file or a voice message.",
    "wizard.ask_video": "Send a video.",
    "wizard.optional": "Optional — you can skip it.",
    "wizard.too_long": "Too long: {length} characters, the limit is {max}. Shorten it and send again.",
    "wizard.too_short": "Too short: at least {min} characters.",
    "wizard.not_number": "That is not a number. Send a number from {min} to {max}.",
    "wizard.out_of_range": "The number must be from {min} to {max}.",
    "wizard.need_photo": "A photo is needed here. Send an image (as a photo or a file).",
    "wizard.need_audio": "An audio file or a voice message is needed here.",
    "wizard.need_video": "A video is needed here.",
    "wizard.use_buttons": "Choose an option with the buttons below.",
    "wizard.no_media_host": "This model needs file uploads, which this bot cannot accept.",
    "wizard.cancelled": "Cancelled. Nothing was charged.",
    "confirm": "<b>{title}</b>\n{params}\n\nPrice: <b>{price}</b>\nBalance after: <b>{after}</b>",
    "confirm.short": "Not enough balance: <b>{missing}</b> missing (price {price}, balance {balance}).",
    "confirm.started_already": "This generation has already started.",
    "job.queued": "⏳ {title}: queued…",
    "job.progress": "⏳ {title}: {state} · {elapsed} (usually ~{eta})",
    "job.state.waiting": "queued",
    "job.state.queuing": "queued",
    "job.state.generating": "generating",
    "job.done": "✅ {title}: done",
    "job.result_caption": "✅ {title}",
    "job.result_link": "✅ {title}: the result is ready but Telegram did not accept the file. Download it here:\n{url}",
    "job.failed": "❌ {title}: {reason}\n{money}",
    "fail.content": "the request was rejected by the content filter. Please change the description.",
    "fail.busy": "the generation service is busy.",
    "fail.timeout": "the generation took too long.",
    "fail.invalid": "the model did not accept the parameters.",
    "fail.unavailable": "the generation service is temporarily unavailable.",
    "fail.provider": "the generation failed.",
    "money.returned": "The money was returned to your balance.",
    "money.nothing": "Nothing was charged.",
    "balance": "💰 Balance: <b>{available}</b>\nReserved for generations: {held}",
    "history.title": "🧾 Recent generations (page {page}):",
    "history.empty": "No generations yet.",
    "history.row": "{date} · {title} · {status} · {price}",
    "history.topups": "Top-ups:",
    "history.topup_row": "{date} · +{amount} ({kind})",
    "status.created": "created",
    "status.submitted": "in progress",
    "status.succeeded": "done",
    "status.delivered": "done",
    "status.failed": "failed, money returned",
    "help": (
        "I create images, video and audio with neural networks.\n"
        "1. Choose a category and a model.\n2. Answer a couple of questions.\n3. Confirm the price — done.\n\n"
        "Commands: /start — menu, /balance — balance, /history — history, /cancel — cancel, /help — help."
    ),
    "hint": "I did not understand that. Choose an action from the menu:",
    "unknown_command": "Unknown command. Open the menu: /start",
    "stale": "This menu is outdated — here is a fresh one.",
    "language.set": "Language: English.",
    "welcome_bonus": "🎁 You received a welcome bonus: {amount}.",
    "referral_bonus": "🎁 A new user joined with your link: +{amount}.",
    "referral_link": "Your link for friends: {link}",
    "topup.title": "Top up your balance with Telegram Stars. Choose a package:",
    "topup.package": "{stars} ⭐ → {amount}",
    "topup.invoice_title": "Top-up of {amount}",
    "topup.invoice_description": "{stars} Stars → {amount} on your balance in {shop}",
    "topup.done": "✅ Your balance was topped up by {amount}. Now: {balance}",
    "topup.bad_payload": "This invoice is outdated. Please open the top-up again.",
    "topup.unverified": "Your payment arrived but did not pass verification. Please contact support, payment id: {charge}",
    "error.generic": "Something went wrong, nothing was charged. Please try again. Code: {cid}",
    "error.unavailable": "The service is temporarily unavailable. Your message will be handled as soon as it is back.",
    "admin.title": (
        "<b>Admin panel</b>\nUsers: {users}\nGenerations today: ✅ {ok} · ❌ {failed} · ⏳ {open}\n"
        "Revenue today: {revenue}\nKIE credits: {credits}\nMarkup: ×{markup}"
    ),
    "admin.btn.user": "🔎 User",
    "admin.btn.credit": "➕ Credit",
    "admin.btn.debit": "➖ Deduct",
    "admin.btn.models": "🧩 Models",
    "admin.btn.markup": "📈 Markup",
    "admin.btn.refund": "↩️ Refund Stars",
    "admin.ask_user": "Send the user's Telegram id.",
    "admin.ask_adjust": "Send: <code>id amount reason</code>, e.g. <code>12345 150 compensation</code>.",
    "admin.ask_markup": "Send the new markup (1 to 100), now ×{markup}.",
    "admin.ask_refund": "Send the payment id (telegram_payment_charge_id).",
    "admin.user": "User {user_id}: balance {available}, reserved {held}, generations {jobs}, since {since}.",
    "admin.no_user": "User {user_id} is not known to this bot.",
    "admin.bad_adjust": "Not understood. Format: <code>id amount reason</code>; amount above zero, reason required.",
    "admin.credited": "Credited {amount} to user {user_id}. Balance: {balance}.",
    "admin.debited": "Deducted {amount} from user {user_id}. Balance: {balance}.",
    "admin.insufficient": "Cannot deduct: the user has only {available} available.",
    "admin.markup_set": "Markup is now ×{markup}.",
    "admin.bad_markup": "The markup must be a number from 1 to 100.",
    "admin.models": "Models (tap to enable/disable), page {page}/{pages}:",
    "admin.refunded": "Refunded {stars} ⭐; {amount} was deducted from the balance.",
    "admin.refund_refused": "Refund refused: {reason}",
    "admin.refund_failed": "Telegram did not perform the refund; the balance was restored.",
    "admin.refund_unknown": "Telegram did not answer: the refund may or may not have happened. The payment is marked in progress; the bot will ask Telegram again in a few minutes.",
    "alert.kie_credits": "⚠️ The bot's KIE key is out of credits: generations do not work. Top up the KIE balance.",
    "alert.kie_auth": "⚠️ KIE rejected the bot's API key: generations do not work. Update the key.",
}

CATALOG: dict[Language, dict[str, str]] = {"ru": RU, "en": EN}


def text(lang: Language, key: str, **values: object) -> str:
    """The text `key` in `lang` with `values` HTML-escaped (they may come from users)."""
    template = CATALOG[lang].get(key) or CATALOG["ru"][key]
    if not values:
        return template
    return template.format(**{k: v if isinstance(v, Raw) else html.escape(str(v)) for k, v in values.items()})


class Raw(str):
    """A value already formatted as HTML (e.g. a list of lines built from other texts)."""

    __slots__ = ()


def pick_language(telegram_code: str | None, default: Language) -> Language:
    """English for English-speaking Telegram clients, Russian for Russian-speaking ones, else the tenant's."""
    code = (telegram_code or "").lower()
    if code.startswith("en"):
        return "en"
    if code[:2] in ("ru", "uk", "be", "kk"):
        return "ru"
    return default
