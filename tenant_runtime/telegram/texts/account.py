"""Balance, history and help, and the replies to what the bot did not expect (hints, stale menus, language)."""

from __future__ import annotations

RU: dict[str, str] = {
    "balance": "💰 Баланс: <b>{available}</b>\nЗарезервировано под генерации: {held}",
    "history.title": "🧾 Последние генерации (стр. {page}):",
    "history.empty": "Генераций пока нет.",
    "history.row": "{date} · {title} · {status} · {price}",
    "history.item": "{n}. {title}",
    "history.card": "<b>{title}</b>\n{date} · {status}\nЦена: {price}",
    "history.links": "⬇️ {title}:\n{links}",
    "history.links_gone": "Файлы этой генерации уже не хранятся. Повторите её, чтобы получить новые.",
    "history.returned": "{price}, возвращено на баланс",
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
        "Команды: /start — меню, /balance — баланс, /history — история, /promo КОД — промокод, /cancel — отмена, "
        "/help — помощь."
    ),
    "hint": "Не понял сообщение. Выберите действие в меню:",
    "unknown_command": "Неизвестная команда. Откройте меню: /start",
    "stale": "Это меню устарело — вот актуальное.",
    "language.set": "Язык: русский.",
    "welcome_bonus": "🎁 Вам начислен приветственный бонус: {amount}. Баланс: {balance}",
    "referral_bonus": "🎁 По вашей ссылке пришёл новый пользователь: +{amount}.",
    "referral_link": "Ваша ссылка для друзей: {link}",
    "invite.title": "🎁 <b>Приглашайте друзей</b>",
    "invite.link": "Ваша ссылка: {link}",
    "invite.stats": "Пришло по ссылке: {joined}\nВы получили: {earned}",
    "invite.bonus": "За каждого нового пользователя по вашей ссылке: +{amount}.",
    "invite.bonus_invited": "Другу — тоже подарок: +{amount} на баланс.",
    "invite.welcome": "🎁 Вы пришли по приглашению: +{amount} на баланс.",
}

EN: dict[str, str] = {
    "balance": "💰 Balance: <b>{available}</b>\nReserved for generations: {held}",
    "history.title": "🧾 Recent generations (page {page}):",
    "history.empty": "No generations yet.",
    "history.row": "{date} · {title} · {status} · {price}",
    "history.item": "{n}. {title}",
    "history.card": "<b>{title}</b>\n{date} · {status}\nPrice: {price}",
    "history.links": "⬇️ {title}:\n{links}",
    "history.links_gone": "The files of this generation are no longer kept. Repeat it to get new ones.",
    "history.returned": "{price}, returned to the balance",
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
        "Commands: /start — menu, /balance — balance, /history — history, /promo CODE — promo code, /cancel — cancel, "
        "/help — help."
    ),
    "hint": "I did not understand that. Choose an action from the menu:",
    "unknown_command": "Unknown command. Open the menu: /start",
    "stale": "This menu is outdated — here is a fresh one.",
    "language.set": "Language: English.",
    "welcome_bonus": "🎁 You received a welcome bonus: {amount}. Balance: {balance}",
    "referral_bonus": "🎁 A new user joined with your link: +{amount}.",
    "referral_link": "Your link for friends: {link}",
    "invite.title": "🎁 <b>Invite friends</b>",
    "invite.link": "Your link: {link}",
    "invite.stats": "Joined with your link: {joined}\nYou received: {earned}",
    "invite.bonus": "For each new user who joins with your link: +{amount}.",
    "invite.bonus_invited": "Your friend gets a gift too: +{amount} on their balance.",
    "invite.welcome": "🎁 You joined by invitation: +{amount} on your balance.",
}
