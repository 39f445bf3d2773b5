"""Every word the platform bot says, in the owner's language (ru by default, en for English clients).

HTML parse mode: values typed by owners (a shop's name) are escaped by the caller (`html.escape`).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Language", "language_of", "text"]

Language = Literal["ru", "en"]

_TEXTS: dict[str, dict[Language, str]] = {
    "start": {
        "ru": "Здесь создают свой магазин ИИ-генераций в Telegram.\n\n"
        "/newshop — создать магазин\n/myshops — мои магазины\n/cancel — прервать текущий шаг",
        "en": "Create your own AI-generation shop on Telegram here.\n\n"
        "/newshop — create a shop\n/myshops — my shops\n/cancel — stop the current step",
    },
    "cancelled": {
        "ru": "Отменено, ничего не сохранено.",
        "en": "Cancelled; nothing was saved.",
    },
    "nothing_to_cancel": {"ru": "Нечего отменять.", "en": "Nothing to cancel."},
    "ask_name": {
        "ru": "Как назовём магазин? Название видят покупатели (до {max} символов).",
        "en": "What is the shop called? Buyers see the name (up to {max} characters).",
    },
    "bad_name": {
        "ru": "Название должно быть от 1 до {max} символов. Попробуйте короче.",
        "en": "The name must be 1 to {max} characters. Try a shorter one.",
    },
    "ask_slug": {
        "ru": "Короткое имя магазина (латиница, цифры и «-», 3–32 символа). Предлагаю <code>{slug}</code> — "
        "нажмите кнопку или напишите своё.",
        "en": "The shop's short name (a-z, digits and '-', 3-32 characters). I suggest <code>{slug}</code>: "
        "tap the button or type your own.",
    },
    "ask_slug_no_suggestion": {
        "ru": "Короткое имя магазина (латиница, цифры и «-», 3–32 символа), например <code>my-shop</code>.",
        "en": "The shop's short name (a-z, digits and '-', 3-32 characters), for example <code>my-shop</code>.",
    },
    "use_slug": {"ru": "Взять {slug}", "en": "Use {slug}"},
    "bad_slug": {
        "ru": "«{slug}» не подходит: только латиница в нижнем регистре, цифры и «-», 3–32 символа, "
        "первый символ — буква или цифра.",
        "en": "'{slug}' will not do: lower-case a-z, digits and '-', 3-32 characters, starting with a letter or digit.",
    },
    "slug_taken": {
        "ru": "Имя <code>{slug}</code> уже занято. Выберите другое.",
        "en": "<code>{slug}</code> is taken. Choose another.",
    },
    "ask_token": {
        "ru": "Токен бота от @BotFather (/newbot → токен вида <code>123456:ABC…</code>). Я удалю сообщение с "
        "токеном сразу после прочтения.",
        "en": "The bot's token from @BotFather (/newbot gives a token like <code>123456:ABC…</code>). I delete "
        "the message holding it as soon as I have read it.",
    },
    "bad_token_shape": {
        "ru": "Это не похоже на токен бота: нужен вид <code>цифры:35 символов</code>, как его выдаёт @BotFather.",
        "en": "That does not look like a bot token: it is <code>digits:35 characters</code>, as @BotFather gives it.",
    },
    "token_in_use": {
        "ru": "Этот бот уже подключён к другому магазину. Создайте нового бота в @BotFather.",
        "en": "This bot already serves another shop. Create a new bot with @BotFather.",
    },
    "token_rejected": {
        "ru": "Telegram не принял этот токен (отозван или с опечаткой). Скопируйте токен из @BotFather ещё раз.",
        "en": "Telegram rejected this token (revoked, or a typo). Copy the token from @BotFather again.",
    },
    "telegram_unreachable": {
        "ru": "Не удалось проверить токен: Telegram не ответил. Пришлите токен ещё раз чуть позже.",
        "en": "Could not check the token: Telegram did not answer. Send it again in a moment.",
    },
    "ask_kie_key": {
        "ru": "Бот @{username} найден. Теперь ключ API KIE.ai (kie.ai → API Key). Сообщение с ключом я тоже "
        "удалю сразу.",
        "en": "Found the bot @{username}. Now the KIE.ai API key (kie.ai → API Key). I delete that message at "
        "once too.",
    },
    "bad_kie_shape": {
        "ru": "Это не похоже на ключ KIE: 16–256 латинских букв, цифр, «_», «-» или «.».",
        "en": "That does not look like a KIE key: 16-256 letters, digits, '_', '-' or '.'.",
    },
    "kie_rejected": {
        "ru": "KIE.ai не принял этот ключ. Проверьте его на kie.ai и пришлите ещё раз.",
        "en": "KIE.ai rejected this key. Check it on kie.ai and send it again.",
    },
    "kie_unreachable": {
        "ru": "Не удалось проверить ключ: KIE.ai не ответил. Пришлите ключ ещё раз чуть позже.",
        "en": "Could not check the key: KIE.ai did not answer. Send it again in a moment.",
    },
    "ask_language": {
        "ru": "Ключ принят (на счету KIE {credits} кредитов). Язык магазина по умолчанию?",
        "en": "Key accepted ({credits} KIE credits on the account). The shop's default language?",
    },
    "ask_markup": {
        "ru": "Наценка: во сколько раз цена для покупателя выше цены KIE. Выберите или напишите число от 1 до "
        "100 (например 2.5).",
        "en": "Markup: how many times the buyer's price is above KIE's. Choose, or type a number from 1 to 100 "
        "(e.g. 2.5).",
    },
    "bad_markup": {
        "ru": "Наценка — число от 1 до 100, например 2 или 2.5.",
        "en": "The markup is a number from 1 to 100, e.g. 2 or 2.5.",
    },
    "summary": {
        "ru": "Проверьте:\n\nМагазин: <b>{name}</b>\nИмя: <code>{slug}</code>\nБот: @{username}\n"
        "Язык: {language}\nНаценка: ×{markup}\n\nСоздать?",
        "en": "Please check:\n\nShop: <b>{name}</b>\nShort name: <code>{slug}</code>\nBot: @{username}\n"
        "Language: {language}\nMarkup: ×{markup}\n\nCreate it?",
    },
    "create": {"ru": "✅ Создать", "en": "✅ Create"},
    "cancel": {"ru": "✖️ Отмена", "en": "✖️ Cancel"},
    "pending_exists": {
        "ru": "Магазин «{name}» ещё ждёт одобрения. Новый можно создать после решения по нему.",
        "en": "Your shop '{name}' is still waiting for approval. You can create another once it is decided.",
    },
    "use_buttons": {
        "ru": "Выберите вариант кнопкой под сообщением выше или /cancel.",
        "en": "Choose with a button under the message above, or /cancel.",
    },
    "expired": {
        "ru": "Этот шаг устарел. Начните заново: /newshop",
        "en": "This step has expired. Start again: /newshop",
    },
    "sent_for_approval": {
        "ru": "Заявка на магазин «{name}» отправлена. Я напишу, как только оператор её рассмотрит.",
        "en": "The request for '{name}' is sent. I will write as soon as an operator has looked at it.",
    },
    "live": {
        "ru": "🎉 Магазин «{name}» работает: @{username}\n\n"
        "• Откройте бота и нажмите /start — так его видят покупатели.\n"
        "• /admin в боте — панель владельца: балансы, промокоды, рассылки, лимиты.\n"
        "• Здесь, в /myshops, — смена ключа KIE, пауза, администраторы.",
        "en": "🎉 The shop '{name}' is live: @{username}\n\n"
        "• Open the bot and send /start: that is what buyers see.\n"
        "• /admin in the bot is the owner's panel: balances, promo codes, broadcasts, limits.\n"
        "• Here, /myshops changes the KIE key, pauses the shop and adds admins.",
    },
    "rejected": {
        "ru": "Заявку на магазин «{name}» отклонили. Ничего не сохранено; напишите оператору, если нужно.",
        "en": "The request for '{name}' was declined. Nothing was kept; contact the operator if needed.",
    },
    "no_shops": {
        "ru": "У вас пока нет магазинов. Создать: /newshop",
        "en": "You have no shops yet. Create one: /newshop",
    },
    "shop_line": {
        "ru": "<b>{name}</b> (<code>{slug}</code>) — {state}",
        "en": "<b>{name}</b> (<code>{slug}</code>): {state}",
    },
    "shops_header": {"ru": "Ваши магазины:", "en": "Your shops:"},
    "state.enabled": {"ru": "работает", "en": "running"},
    "state.paused": {"ru": "на паузе", "en": "paused"},
    "state.pending": {"ru": "ждёт одобрения", "en": "awaiting approval"},
    "state.disabled": {"ru": "остановлен оператором", "en": "stopped by the operator"},
    "state.token_invalid": {
        "ru": "Telegram отклонил токен — обратитесь к оператору",
        "en": "Telegram rejected the token; contact the operator",
    },
    "btn_key": {"ru": "🔑 Ключ KIE · {slug}", "en": "🔑 KIE key · {slug}"},
    "btn_pause": {"ru": "⏸ Пауза · {slug}", "en": "⏸ Pause · {slug}"},
    "btn_resume": {"ru": "▶️ Запустить · {slug}", "en": "▶️ Resume · {slug}"},
    "btn_admin": {"ru": "👤 Админ · {slug}", "en": "👤 Admin · {slug}"},
    "not_yours": {"ru": "Это не ваш магазин.", "en": "This is not your shop."},
    "ask_new_kie_key": {
        "ru": "Новый ключ KIE для <code>{slug}</code>. Сообщение с ключом я удалю сразу.",
        "en": "The new KIE key for <code>{slug}</code>. I delete the message holding it at once.",
    },
    "kie_key_changed": {
        "ru": "Ключ KIE для <code>{slug}</code> заменён; новые генерации идут с ним.",
        "en": "The KIE key of <code>{slug}</code> is replaced; new generations use it.",
    },
    "paused": {
        "ru": "Магазин <code>{slug}</code> на паузе: бот не отвечает покупателям, пока вы его не запустите.",
        "en": "<code>{slug}</code> is paused: the bot answers no buyer until you resume it.",
    },
    "resumed": {"ru": "Магазин <code>{slug}</code> снова работает.", "en": "<code>{slug}</code> runs again."},
    "cannot_change_state": {
        "ru": "Сейчас это недоступно: магазин {state}.",
        "en": "Not possible now: the shop is {state}.",
    },
    "ask_admin": {
        "ru": "Числовой Telegram id нового администратора <code>{slug}</code> (его можно узнать у @userinfobot).",
        "en": "The numeric Telegram id of the new admin of <code>{slug}</code> (@userinfobot tells it).",
    },
    "bad_admin": {
        "ru": "Нужен числовой Telegram id, например 123456789.",
        "en": "A numeric Telegram id is needed, e.g. 123456789.",
    },
    "admin_added": {
        "ru": "Пользователь {admin} теперь администратор <code>{slug}</code>.",
        "en": "User {admin} is now an admin of <code>{slug}</code>.",
    },
    "admin_already": {
        "ru": "Пользователь {admin} уже администратор <code>{slug}</code>.",
        "en": "User {admin} is already an admin of <code>{slug}</code>.",
    },
    "too_many_admins": {
        "ru": "У магазина уже {max} администраторов — больше нельзя.",
        "en": "The shop already has {max} admins: no more can be added.",
    },
    "not_text": {
        "ru": "Пришлите текстом, пожалуйста, или /cancel.",
        "en": "Please send it as text, or /cancel.",
    },
    "unknown": {
        "ru": "Не понял. /newshop — создать магазин, /myshops — мои магазины.",
        "en": "I did not get that. /newshop creates a shop, /myshops lists yours.",
    },
    # To the operators' chats (ALERT_LANGUAGE).
    "approval_request": {
        "ru": "Новый магазин ждёт одобрения:\n\n<b>{name}</b> (<code>{slug}</code>)\nБот: @{username}\n"
        "Владелец: {owner}\nЯзык: {language}, наценка ×{markup}",
        "en": "A new shop awaits approval:\n\n<b>{name}</b> (<code>{slug}</code>)\nBot: @{username}\n"
        "Owner: {owner}\nLanguage: {language}, markup ×{markup}",
    },
    "approve": {"ru": "✅ Одобрить", "en": "✅ Approve"},
    "reject": {"ru": "❌ Отклонить", "en": "❌ Reject"},
    "approved_by": {"ru": "✅ Одобрен ({who}).", "en": "✅ Approved ({who})."},
    "rejected_by": {"ru": "❌ Отклонён ({who}).", "en": "❌ Rejected ({who})."},
    "already_decided": {"ru": "По этой заявке уже решили.", "en": "This request is already decided."},
    "operators_only": {"ru": "Только для операторов.", "en": "Operators only."},
    "created_open": {
        "ru": "Новый магазин (без одобрения): <b>{name}</b> (<code>{slug}</code>), @{username}, владелец {owner}.",
        "en": "A new shop (no approval needed): <b>{name}</b> (<code>{slug}</code>), @{username}, owner {owner}.",
    },
}


def language_of(code: str | None) -> Language:
    """Russian by default; English for clients set to English."""
    return "en" if code and code.lower().startswith("en") else "ru"


def text(language: Language, key: str, /, **values: object) -> str:
    return _TEXTS[key][language].format(**values)
