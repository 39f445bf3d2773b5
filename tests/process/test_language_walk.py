"""One model of every category walked in Russian and in English through the fake Telegram (issue 22).

Every screen is in the user's language (no raw wire value such as `square_hd`, `TURBO` or `basic` on a
button or in a message), the confirm screen reads naturally ("?" never followed by ":"), progress shows
from the first second with the elapsed time and the usual duration and is then edited in place, and
the result says what was charged and the balance left, as the ledger has them.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from sandbox.kie import FakeKieConfig
from sandbox.stack import ScriptedUser, Stack, SupervisorProcess, buttons
from sandbox.telegram.model import TranscriptEntry
from shared.registry import ModelSpec
from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.billing.pricing import format_money
from tenant_runtime.config import Language
from tenant_runtime.telegram.option_labels import option_label
from tenant_runtime.telegram.wizard_fields import steps

pytestmark = pytest.mark.slow

WELCOME = 1_000_000
MODELS = (
    "seedream/4.5-text-to-image",  # quality basic | high
    "bytedance/seedream-v4-text-to-image",  # image_size square_hd, landscape_21_9 ...
    "seedream/4.5-edit",  # photos, then a prompt and options
    "kling-2.6/text-to-video",  # a yes/no question, then durations
    "topaz/image-upscale",  # upscale factors
    "elevenlabs/text-to-speech",  # audio
)
UNIVERSAL = re.compile(r"\d+:\d+|\d+[pP]|\d+K|\d+")
SNAKE = re.compile(r"\b[A-Za-z0-9]+_[A-Za-z0-9_]+\b")
ALL_CAPS = re.compile(r"\b[A-Z]{3,}\b")
URL = re.compile(r"https?://\S+")


@dataclass(frozen=True)
class Words:
    menu: str
    step: str
    price: str
    generate: str
    skip: str
    yes: str
    more: str
    usually: str
    prompt: str


WORDS: dict[Language, Words] = {
    "ru": Words("Выберите, что создать", "Шаг", "Цена", "Сгенерировать", "Пропустить", "Да", "Продолжить", "обычно ~", "тихое озеро на рассвете"),
    "en": Words("Choose what to create", "Step", "Price", "Generate", "Skip", "Yes", "Continue", "usually ~", "a calm lake at dawn"),
}  # fmt: skip


@pytest.fixture(scope="module")
async def stack(module_database: str) -> AsyncIterator[Stack]:
    # Every generation takes 6.5 s: long enough to see the progress message edited once.
    s = Stack(
        module_database, Path(tempfile.mkdtemp(prefix="tgsup-walk-")), kie_config=FakeKieConfig(durations=(6.5, 6.5))
    )
    await s.start()
    await s.add_tenant("walk-shop", options=("--welcome-bonus", str(WELCOME)))
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def supervisor(stack: Stack) -> AsyncIterator[SupervisorProcess]:
    process = await stack.start_supervisor("walk-1")
    await process.wait_active(1)
    yield process
    await process.stop()


async def _answer(user: ScriptedUser, words: Words, spec: ModelSpec, entry: TranscriptEntry) -> TranscriptEntry:
    """Answer every wizard step; returns the confirm screen."""
    fields = steps(spec, {})
    for index, field in enumerate(fields):
        lang: Language = "ru" if words is WORDS["ru"] else "en"
        then = f"{words.step} {index + 2}/{len(fields)}" if index + 1 < len(fields) else words.price
        if field.type == "string":
            entry = await user.say(words.prompt, expect=then)
        elif field.type in ("image_url", "image_urls"):
            if field.type == "image_urls" and (field.max_items or 1) > 1:
                entry = await user.send_photo(expect=words.more)
                entry = await user.tap(entry, words.more, expect=then)
            else:
                entry = await user.send_photo(expect=then)
        elif field.type == "enum":
            values = field.values or ()
            entry = await user.tap(entry, option_label(field.name, values[-1], lang), expect=then)
        elif field.type == "bool":
            entry = await user.tap(entry, words.yes, expect=then)
        else:
            assert not field.required, field
            entry = await user.tap(entry, words.skip, expect=then)
    return entry


def _raw_tokens(spec: ModelSpec, texts: list[str]) -> list[str]:
    raw = {v for f in spec.inputs if f.type == "enum" for v in f.values or () if not UNIVERSAL.fullmatch(v)}
    title_words = set(re.findall(r"\w+", spec.title.ru + " " + spec.title.en))
    found = []
    for text in texts:
        plain = URL.sub("", text)
        found += [f"snake_case {t!r} in {text!r}" for t in SNAKE.findall(plain)]
        found += [f"ALL-CAPS {t!r} in {text!r}" for t in ALL_CAPS.findall(plain) if t not in title_words]
        found += [f"wire value {v!r} in {text!r}" for v in raw if re.search(rf"(?<!\w){re.escape(v)}(?!\w)", plain)]
    return found


async def _walk(stack: Stack, db: asyncpg.Pool, lang: Language, model: str, user_id: int) -> None:
    words, tenant = WORDS[lang], stack.tenants[0]
    spec = stack.registry.get(model)
    assert spec is not None
    user = ScriptedUser(stack.telegram, tenant.token, user_id, language=lang)
    menu = await user.say("/start", expect=words.menu)
    await user.telegram.press_button(user.token, user.user_id, menu.message_id, f"md:{model}:1", force=True)
    first = await user.expect(f"{words.step} 1/", after=menu.message_id - 1)
    confirm = await _answer(user, words, spec, first)
    assert "?:" not in (confirm.text or ""), confirm.text
    progress = await user.tap(confirm, words.generate, expect=words.usually)
    assert "0:00" in (progress.text or ""), progress.text
    result = await user.telegram.wait_for_bot_message(
        user.token,
        user.user_id,
        after_message_id=progress.message_id,
        timeout=40,
        predicate=lambda e: e.media_kind is not None or "✅" in (e.text or ""),
    )
    # The progress message was edited with the elapsed time before the result came.
    edits = [
        str(c.params.get("text"))
        for c in stack.telegram.calls(user.token, "editMessageText")
        if str(c.params.get("message_id")) == str(progress.message_id)
    ]
    assert any("0:05" in e or "0:1" in e for e in edits), edits
    # The result says what was charged and what is left, as the ledger has them.
    tenant_id = await db.fetchval("SELECT id FROM tenants WHERE slug = $1", tenant.slug)
    price = await db.fetchval("SELECT price FROM jobs WHERE tenant_id = $1 AND user_id = $2", tenant_id, user.user_id)
    balance = await Ledger(db).balance(tenant_id, user.user_id)
    assert (balance.available, balance.held) == (WELCOME - price, 0)
    charged, left = format_money(price, "RUB", lang), format_money(balance.available, "RUB", lang)
    line = f"Списано {charged} · Баланс {left}" if lang == "ru" else f"Charged {charged} · Balance {left}"
    assert line in (result.caption or result.text or ""), (result.caption, result.text)
    said = [e.text or e.caption or "" for e in stack.telegram.transcript(user.token, user.user_id) if e.from_bot]
    said += [label for e in stack.telegram.transcript(user.token, user.user_id) for label, _ in buttons(e)]
    assert _raw_tokens(spec, said) == [], user.log


async def test_every_category_in_both_languages(stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool) -> None:
    flows = [(lang, model) for lang in ("ru", "en") for model in MODELS]
    await asyncio.gather(*(_walk(stack, db, lang, model, 6_600_000 + i) for i, (lang, model) in enumerate(flows)))
