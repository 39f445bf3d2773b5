"""`tenants update` options for a shop's own words: `--support`, `--welcome-file`, `--help-file`,
`--description-file`, `--short-description-file`.

A text file holds both languages in sections, a line `ru:` or `en:` starting each (an empty section puts
that language back on the product's default text); or it holds one language, named before the path:
`--welcome-file en:welcome.txt`. Every text is checked as Telegram will check it (length, HTML tags) before
anything is written, and the result is printed so the operator sees what users will see.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from shared.telegram_html import visible_length
from supervisor.validation import InputError
from tenant_runtime.shop_profile import LANGUAGES, ProfileError, TextField, parse_support, parse_text

__all__ = ["add_profile_arguments", "print_profile_changes", "profile_changes"]

MAX_FILE_BYTES = 64 * 1024
_OPTIONS = {
    TextField.WELCOME: "welcome_file",
    TextField.HELP: "help_file",
    TextField.DESCRIPTION: "description_file",
    TextField.SHORT_DESCRIPTION: "short_description_file",
}


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--support", help="support contact: @username or an https:// link ('none' removes it)")
    for text_field, dest in _OPTIONS.items():
        parser.add_argument(
            f"--{dest.replace('_', '-')}",
            dest=dest,
            metavar="[LANG:]PATH",
            help=f"{text_field.value} text: a file with 'ru:' / 'en:' sections, or LANG:PATH for one language",
        )


def profile_changes(args: argparse.Namespace) -> dict[str, Any]:
    """TenantChanges fields (`support_url`, `texts`) from the options given; {} when none."""
    changes: dict[str, Any] = {}
    if args.support is not None:
        try:
            changes["support_url"] = "" if args.support.strip().lower() == "none" else parse_support(args.support)
        except ProfileError as exc:
            raise InputError(str(exc)) from None
    texts: dict[str, dict[str, str]] = {}
    for text_field, dest in _OPTIONS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        for language, body in _read_sections(value).items():
            try:
                texts.setdefault(language, {})[text_field.value] = parse_text(text_field, body) if body.strip() else ""
            except ProfileError as exc:
                raise InputError(f"{value} [{language}]: {exc}") from None
    if texts:
        changes["texts"] = texts
    return changes


def _read_sections(value: str) -> dict[str, str]:
    language, sep, path = value.partition(":")
    single = sep and language in LANGUAGES
    raw = _read(Path(path if single else value))
    if single:
        return {language: raw}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in raw.splitlines():
        header = line.strip().lower()
        if header in ("ru:", "en:"):
            current = sections.setdefault(header[:2], [])
        elif current is not None:
            current.append(line)
        elif line.strip():
            raise InputError(
                f"{value}: text before any 'ru:' or 'en:' line; start each language's section with one, "
                "or give one language as LANG:PATH"
            )
    if not sections:
        raise InputError(f"{value}: no 'ru:' or 'en:' section; or give one language as LANG:PATH")
    return {lang: "\n".join(lines).strip() for lang, lines in sections.items()}


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{path} is {len(data)} bytes; a text file may be at most {MAX_FILE_BYTES}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None


def print_profile_changes(changes: dict[str, Any]) -> None:
    """What users will see, as set (HTML as written; Telegram renders the tags)."""
    if "support_url" in changes:
        print(f"support: {changes['support_url'] or '(none)'}")
    texts = changes.get("texts")
    if isinstance(texts, dict):
        for language, by_field in texts.items():
            for name, body in by_field.items():
                if not body:
                    print(f"--- {name} [{language}]: back to the default text")
                    continue
                length = visible_length(body) if TextField(name).html else len(body)
                print(f"--- {name} [{language}], {length} characters:\n{body}")
