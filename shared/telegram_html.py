"""Text that will be sent with Telegram's HTML parse mode, checked before it is stored.

Telegram rejects a whole message for one unknown tag or one unclosed one ("can't parse entities"), so a
shop's welcome text with a stray `<br>` would break its /start for every user. `check_html` says what is
wrong in words an operator or a shop admin can act on; `visible_length` is what Telegram counts against
its limits (tags do not count, an entity is one character).
"""

from __future__ import annotations

from html.parser import HTMLParser

__all__ = ["ALLOWED_TAGS", "HtmlProblem", "check_html", "visible_length"]

# https://core.telegram.org/bots/api#html-style
ALLOWED_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "tg-spoiler", "blockquote", "span"}
)
_ATTRIBUTES = {"a": {"href"}, "span": {"class"}, "code": {"class"}, "blockquote": {"expandable"}}


class HtmlProblem(ValueError):
    """The text would not be accepted by Telegram; the message says why (never the whole text)."""


class _Checker(HTMLParser):
    def __init__(self) -> None:
        # Entities unconverted: a raw `<` or `&` in the text must be told apart from `&lt;` / `&amp;`.
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []
        self.visible = 0
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self._fail(f"<{tag}> is not a tag Telegram allows (allowed: {', '.join(sorted(ALLOWED_TAGS))})")
            return
        for name, value in attrs:
            if name not in _ATTRIBUTES.get(tag, set()):
                self._fail(f'<{tag} {name}="..."> is not an attribute Telegram allows')
            elif tag == "a" and not (value or "").startswith(("https://", "http://", "tg://")):
                self._fail("a link must start with https://, http:// or tg://")
            elif tag == "span" and value != "tg-spoiler":
                self._fail('<span> is only allowed as <span class="tg-spoiler">')
        self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._fail(f"<{tag}/> is not a tag Telegram allows (use a line break instead of <br>)")

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self._fail(f"</{tag}> closes a tag that is not open")
            return
        self.open.pop()

    def handle_data(self, data: str) -> None:
        if "<" in data or ">" in data:
            self._fail("a '<' or '>' that is not part of a tag: write &lt; or &gt; instead")
        if "&" in data:
            self._fail("an '&' that starts no entity: write &amp; instead")
        self.visible += len(data)

    def handle_entityref(self, name: str) -> None:
        if name not in ("lt", "gt", "amp", "quot"):
            self._fail(f"&{name}; is not an entity Telegram knows (use &lt; &gt; &amp; &quot;)")
        self.visible += 1

    def handle_charref(self, name: str) -> None:
        self.visible += 1

    def handle_comment(self, data: str) -> None:
        self._fail("comments (<!-- -->) are not allowed")

    def handle_decl(self, decl: str) -> None:
        self._fail("declarations (<!...>) are not allowed")

    def handle_pi(self, data: str) -> None:
        self._fail("processing instructions (<?...>) are not allowed")

    def _fail(self, problem: str) -> None:
        self.problem = self.problem or problem


def _parse(text: str) -> _Checker:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    return checker


def check_html(text: str, *, limit: int) -> str:
    """The text, if Telegram will take it in HTML parse mode within `limit` visible characters."""
    if "\x00" in text:
        raise HtmlProblem("the text contains a NUL character")
    checker = _parse(text)
    if checker.problem is not None:
        raise HtmlProblem(checker.problem)
    if checker.open:
        raise HtmlProblem(f"<{checker.open[-1]}> is never closed")
    if not text.strip():
        raise HtmlProblem("the text is empty")
    if checker.visible > limit:
        raise HtmlProblem(f"the text is {checker.visible} characters; Telegram allows at most {limit}")
    return text


def visible_length(text: str) -> int:
    return _parse(text).visible
