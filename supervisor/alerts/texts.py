"""The words of every alert and recovery, in the operator's language (ALERT_LANGUAGE: ru or en).

Plain text (no markup): details come from error messages, and a stray `<` must not break a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from supervisor.alerts.model import Event, Kind, Notice

__all__ = ["TEXTS", "digest_text", "duration", "notice_text", "test_text"]

Language = str  # "ru" | "en"

# kind -> language -> (alert, recovery); {subject} and {detail} are filled in.
TEXTS: dict[Kind, dict[str, tuple[str, str]]] = {
    Kind.TOKEN_INVALID: {
        "ru": (
            "Бот {subject}: Telegram отклонил токен (отозван в @BotFather?). Бот остановлен до замены: "
            "BOT_TOKEN=... python -m supervisor tenants update {subject} --bot-token",
            "Бот {subject}: токен снова принят, бот работает.",
        ),
        "en": (
            "Bot {subject}: Telegram rejected its token (revoked in @BotFather?). The bot is stopped until it "
            "changes: BOT_TOKEN=... python -m supervisor tenants update {subject} --bot-token",
            "Bot {subject}: the token is accepted again, the bot is running.",
        ),
    },
    Kind.QUARANTINED: {
        "ru": (
            "Бот {subject} на карантине: падает раз за разом (больше 5 перезапусков за минуту). {detail}",
            "Бот {subject} вышел из карантина.",
        ),
        "en": (
            "Bot {subject} is quarantined: it keeps crashing (more than 5 restarts in a minute). {detail}",
            "Bot {subject} is out of quarantine.",
        ),
    },
    Kind.BACKOFF: {
        "ru": ("Бот {subject} не может запуститься больше 5 минут. {detail}", "Бот {subject} снова работает."),
        "en": ("Bot {subject} has not been able to start for over 5 minutes. {detail}", "Bot {subject} runs again."),
    },
    Kind.KIE_CREDITS: {
        "ru": (
            "Бот {subject}: у ключа KIE кончились кредиты (402). Генерации не идут, деньги пользователям "
            "возвращаются. Пополните счёт KIE.",
            "Бот {subject}: KIE снова принимает задачи.",
        ),
        "en": (
            "Bot {subject}: its KIE key is out of credits (402). Generations fail and users get their money "
            "back. Top up the KIE account.",
            "Bot {subject}: KIE accepts tasks again.",
        ),
    },
    Kind.KIE_AUTH: {
        "ru": (
            "Бот {subject}: KIE отклоняет ключ (401). Замените его: "
            "KIE_API_KEY=... python -m supervisor tenants update {subject} --kie-key",
            "Бот {subject}: KIE снова принимает задачи.",
        ),
        "en": (
            "Bot {subject}: KIE rejects its key (401). Replace it: "
            "KIE_API_KEY=... python -m supervisor tenants update {subject} --kie-key",
            "Bot {subject}: KIE accepts tasks again.",
        ),
    },
    Kind.REFUNDS_UNSETTLED: {
        "ru": (
            "Бот {subject}: возвраты Stars без ответа Telegram больше часа ({detail}).",
            "Бот {subject}: все возвраты Stars завершены.",
        ),
        "en": (
            "Bot {subject}: Stars refunds without an answer from Telegram for over an hour ({detail}).",
            "Bot {subject}: every Stars refund is settled.",
        ),
    },
    Kind.DATABASE: {
        "ru": (
            "Postgres недоступен для {subject} больше 30 с. Обновления не обрабатываются (Telegram повторит их).",
            "Postgres снова доступен для {subject}.",
        ),
        "en": (
            "Postgres has been unreachable from {subject} for over 30 s. Updates are not handled "
            "(Telegram will deliver them again).",
            "Postgres is reachable again from {subject}.",
        ),
    },
    Kind.REPLICA_NOT_SERVING: {
        "ru": ("Реплика {subject} не обслуживает ботов больше 60 с: {detail}", "Реплика {subject} снова в строю."),
        "en": ("Replica {subject} has not been serving for over 60 s: {detail}", "Replica {subject} serves again."),
    },
    Kind.REPLICA_SILENT: {
        "ru": (
            "Реплика {subject} молчит {detail} (убита, заморожена или без связи с Postgres).",
            "Реплика {subject} снова на связи или остановлена.",
        ),
        "en": (
            "Replica {subject} has been silent for {detail} (killed, frozen or cut off from Postgres).",
            "Replica {subject} is back or has stopped.",
        ),
    },
    Kind.LOCK_TABLE_FULL: {
        "ru": (
            "Таблица блокировок Postgres заполнена: {detail}. Увеличьте max_locks_per_transaction.",
            "Таблица блокировок Postgres снова вмещает всех ботов.",
        ),
        "en": (
            "The Postgres lock table is full: {detail}. Raise max_locks_per_transaction.",
            "The Postgres lock table holds every bot again.",
        ),
    },
    Kind.LOOP_FAILING: {
        "ru": ("Фоновый цикл {subject} сбоит раз за разом: {detail}", "Фоновый цикл {subject} снова работает."),
        "en": ("Background loop {subject} keeps failing: {detail}", "Background loop {subject} works again."),
    },
    Kind.TEST: {
        "ru": ("Тестовое оповещение от {subject}: канал работает.", "Тест {subject} завершён."),
        "en": ("Test alert from {subject}: this channel works.", "Test {subject} done."),
    },
}

_LASTED = {"ru": "длилось {}", "en": "lasted {}"}
_DIGEST = {
    "ru": "Оповещений больше лимита в минуту; сразу все ({}):",
    "en": "More alerts than a minute allows; all at once ({}):",
}
_UNITS = {"ru": ("с", "мин", "ч", "д"), "en": ("s", "min", "h", "d")}


def duration(seconds: float, language: Language) -> str:
    s, m, h, d = _UNITS[language]
    if seconds < 60:
        return f"{seconds:.0f} {s}"
    if seconds < 3600:
        return f"{seconds / 60:.0f} {m}"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} {h}"
    return f"{seconds / 86400:.1f} {d}"


def notice_text(notice: Notice, language: Language) -> str:
    incident = notice.incident
    alert, recovery = TEXTS[incident.kind][language]
    if notice.event is Event.RECOVERY:
        body = recovery.format(subject=incident.subject, detail=incident.detail)
        if notice.resolved_at is not None:
            lasted = duration((notice.resolved_at - notice.opened_at).total_seconds(), language)
            body += f" ({_LASTED[language].format(lasted)})"
        return "🟢 " + body
    return "🔴 " + alert.format(subject=incident.subject, detail=incident.detail).rstrip()


def digest_text(notices: Sequence[Notice], language: Language, *, limit: int = 3900) -> str:
    lines = [_DIGEST[language].format(len(notices))]
    for notice in notices:
        line = notice_text(notice, language)
        if sum(len(x) + 1 for x in lines) + len(line) > limit:
            lines.append(f"… (+{len(notices) - len(lines) + 1})")
            break
        lines.append(line)
    return "\n".join(lines)


def test_text(instance: str, language: Language, at: datetime) -> str:
    return "🔔 " + TEXTS[Kind.TEST][language][0].format(subject=instance) + f" ({at:%Y-%m-%d %H:%M:%S} UTC)"
