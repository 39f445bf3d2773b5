"""Message text the way Telegram stores it: HTML markup parsed into entities, ends trimmed.

Parsing HTML for real (instead of storing the markup) matters for tests: transcripts show what the user
reads, "message is not modified" compares what Telegram compares, and a bot that leaks an unescaped
`<` from user input fails here exactly as it fails in production.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sandbox.telegram.model import JSONObject, bad_request

_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
    "span": "spoiler",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPECIAL = re.compile(r"[<&]")
_TAG_NAME = re.compile(r"\s*([A-Za-z][A-Za-z0-9-]*)(.*)\Z", re.S)
_ATTRIBUTE = re.compile(r"""([A-Za-z_][\w-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_CHAR_REF = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z]{2,8});")
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?=\s|\Z)")


def utf16_len(text: str) -> int:
    """Entity offsets count UTF-16 code units, so an emoji is two."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


@dataclass
class _Open:
    tag: str
    entity_type: str
    offset: int
    attributes: dict[str, str]
    language: str | None = None


@dataclass
class _HtmlParser:
    source: str
    parts: list[str] = field(default_factory=list)
    position: int = 0  # UTF-16 length of `parts`
    stack: list[_Open] = field(default_factory=list)
    entities: list[JSONObject] = field(default_factory=list)

    def fail(self, problem: str, index: int, detail: str = "") -> Exception:
        """Telegram's wording, including the UTF-8 byte offset that makes its errors findable."""
        byte_offset = len(self.source[:index].encode())
        return bad_request(f"can't parse entities: {problem} at byte offset {byte_offset}{detail}")

    def emit(self, text: str) -> None:
        self.parts.append(text)
        self.position += utf16_len(text)

    def run(self) -> tuple[str, list[JSONObject]]:
        index = 0
        source = self.source
        while index < len(source):
            special = _SPECIAL.search(source, index)
            end = special.start() if special else len(source)
            if end > index:
                self.emit(source[index:end])
            if special is None:
                break
            index = self.char_ref(end) if source[end] == "&" else self.tag(end)
        if self.stack:
            raise bad_request(
                f"can't parse entities: Can't find end tag corresponding to start tag \"{self.stack[-1].tag}\""
            )
        self.entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
        return "".join(self.parts), self.entities

    def char_ref(self, index: int) -> int:
        """Numeric references and the four named ones decode; any other '&' stays literal text."""
        match = _CHAR_REF.match(self.source, index)
        name = match.group(1) if match else ""
        if match is None or (not name.startswith("#") and name.lower() not in _NAMED_ENTITIES):
            self.emit("&")
            return index + 1
        if name.startswith("#"):
            code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
            self.emit(chr(code) if 0 < code <= 0x10FFFF else "\ufffd")
        else:
            self.emit(_NAMED_ENTITIES[name.lower()])
        return match.end()

    def tag(self, index: int) -> int:
        close = self.source.find(">", index)
        closing = self.source.startswith("</", index)
        if close == -1:
            raise self.fail("Unclosed end tag" if closing else "Unclosed start tag", index)
        inner = self.source[index + 1 : close]
        if closing:
            self.end_tag(index, inner[1:].strip().lower())
        else:
            self.start_tag(index, inner)
        return close + 1

    def start_tag(self, index: int, inner: str) -> None:
        match = _TAG_NAME.match(inner)
        if match is None or match.group(1).lower() not in _SIMPLE_TAGS:
            shown = inner.split(maxsplit=1)[0].lower() if inner.strip() else ""
            raise self.fail(f'Unsupported start tag "{shown}"', index)
        name = match.group(1).lower()
        attributes = {
            attr.group(1).lower(): attr.group(2) or attr.group(3) or attr.group(4) or ""
            for attr in _ATTRIBUTE.finditer(match.group(2))
        }
        if name == "span" and attributes.get("class") != "tg-spoiler":
            raise self.fail('Tag "span" must have class "tg-spoiler"', index)
        entity_type = _SIMPLE_TAGS[name]
        if name == "blockquote" and "expandable" in attributes:
            entity_type = "expandable_blockquote"
        self.stack.append(_Open(name, entity_type, self.position, attributes))

    def end_tag(self, index: int, name: str) -> None:
        if not self.stack:
            raise self.fail("Unexpected end tag", index)
        opened = self.stack.pop()
        if opened.tag != name:
            raise self.fail("Unmatched end tag", index, f', expected "</{opened.tag}>", found "</{name}>"')
        language = opened.attributes.get("class", "").removeprefix("language-")
        if name == "code" and language and self.stack and self.stack[-1].tag == "pre":
            # <pre><code class="language-x"> is how Telegram spells a pre block with a language.
            self.stack[-1].language = language
            return
        length = self.position - opened.offset
        if length == 0:
            return
        entity: JSONObject = {"type": opened.entity_type, "offset": opened.offset, "length": length}
        if name == "a":
            href = opened.attributes.get("href", "")
            if not href:
                return
            entity["url"] = href
        elif name == "pre" and opened.language:
            entity["language"] = opened.language
        elif name == "tg-emoji":
            entity["custom_emoji_id"] = opened.attributes.get("emoji-id", "")
        self.entities.append(entity)


def _trim(text: str, entities: list[JSONObject]) -> tuple[str, list[JSONObject]]:
    """Telegram drops whitespace around a message, shifting and clipping the entities with it."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    head = utf16_len(text[: len(text) - len(text.lstrip())])
    size = utf16_len(stripped)
    trimmed: list[JSONObject] = []
    for entity in entities:
        start = max(entity["offset"] - head, 0)
        end = min(entity["offset"] + entity["length"] - head, size)
        if end > start:
            trimmed.append(entity | {"offset": start, "length": end - start})
    return stripped, trimmed


def format_text(
    raw: str, parse_mode: str | None, entities: list[JSONObject] | None
) -> tuple[str, list[JSONObject] | None]:
    """Turn what the bot sent into what Telegram stores.

    Only HTML is parsed; Markdown and MarkdownV2 text is stored verbatim (their escaping rules are not
    reproduced), which keeps such bots working but will not catch their parse errors.
    """
    if parse_mode is not None and parse_mode.lower() == "html":
        text, parsed = _HtmlParser(raw).run()
    else:
        text, parsed = raw, list(entities or [])
    text, parsed = _trim(text, parsed)
    return text, parsed or None


def command_entities(text: str) -> list[JSONObject] | None:
    """A user's "/start payload" reaches the bot with a bot_command entity, as bots that read entities expect."""
    match = _COMMAND.match(text)
    if match is None:
        return None
    return [{"type": "bot_command", "offset": 0, "length": match.end()}]
