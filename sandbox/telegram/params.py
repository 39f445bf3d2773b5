"""Bot API request parameters from any of the encodings Telegram accepts.

aiogram sends every value as a form field (JSON-encoded when it is an object, multipart when a file is
attached), other clients send JSON bodies or query strings. Known fields are normalised once into
native values so handlers and the call log see `chat_id=42`, not `"42"`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from multidict import MultiMapping

from sandbox.telegram.model import JSONObject, bad_request

_INT_FIELDS = frozenset(
    {
        "chat_id",
        "message_id",
        "user_id",
        "offset",
        "limit",
        "timeout",
        "max_connections",
        "reply_to_message_id",
        "cache_time",
        "message_thread_id",
        "duration",
        "width",
        "height",
    }
)
_BOOL_FIELDS = frozenset(
    {
        "drop_pending_updates",
        "show_alert",
        "ok",
        "disable_notification",
        "protect_content",
        "disable_web_page_preview",
        "has_spoiler",
        "supports_streaming",
        "allow_sending_without_reply",
    }
)
_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "media",
        "prices",
        "commands",
        "scope",
        "allowed_updates",
        "link_preview_options",
        "reply_parameters",
        "suggested_tip_amounts",
    }
)
_ATTACH = "attach://"


@dataclass(frozen=True)
class UploadedFile:
    filename: str
    content_type: str | None
    data: bytes

    def describe(self) -> str:
        return f"<upload {self.filename}: {len(self.data)} bytes>"


def _normalise(name: str, value: Any) -> Any:
    """Best effort: a value that does not convert is kept raw and rejected by the accessor that needs it."""
    if not isinstance(value, str):
        return value
    try:
        if name in _INT_FIELDS:
            return int(value)
        if name in _BOOL_FIELDS:
            return {"true": True, "1": True, "false": False, "0": False, "": False}.get(value.lower(), value)
        if name in _JSON_FIELDS:
            return json.loads(value)
    except ValueError:
        return value
    return value


class Params:
    def __init__(self, values: JSONObject, files: dict[str, UploadedFile] | None = None) -> None:
        self.values = {name: _normalise(name, value) for name, value in values.items()}
        self.files = files or {}

    @classmethod
    async def from_request(cls, request: web.Request) -> Params:
        values: JSONObject = dict(request.query)
        if not request.body_exists:
            return cls(values)
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError as exc:
                raise bad_request("can't parse JSON object") from exc
            if not isinstance(body, dict):
                raise bad_request("can't parse JSON object")
            return cls(values | body)
        if request.content_type == "multipart/form-data":
            return await cls.from_multipart(await request.multipart(), values)
        return cls(values | _form_values(await request.post()))

    @classmethod
    async def from_multipart(cls, reader: MultipartReader, values: JSONObject | None = None) -> Params:
        fields: JSONObject = dict(values or {})
        files: dict[str, UploadedFile] = {}
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            data = await part.read()
            if part.filename is not None:
                content_type = part.headers.get("Content-Type")
                files[part.name] = UploadedFile(part.filename, content_type, bytes(data))
            else:
                fields[part.name] = bytes(data).decode(part.get_charset("utf-8"))
        return cls(fields, files)

    def logged(self) -> JSONObject:
        """Parameters for the call log: uploads are described rather than copied."""
        described = {name: upload.describe() for name, upload in self.files.items()}
        logged = {
            name: described.get(value.removeprefix(_ATTACH), value)
            if isinstance(value, str) and value.startswith(_ATTACH)
            else value
            for name, value in self.values.items()
        }
        return logged | {name: text for name, text in described.items() if name not in self.values}

    def has(self, name: str) -> bool:
        return self.values.get(name) is not None or name in self.files

    def opt_str(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise bad_request(f'field "{name}" must be a string')
        return str(value)

    def opt_int(self, name: str) -> int | None:
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_request(f'field "{name}" must be an integer')
        return value

    def req_int(self, name: str) -> int:
        value = self.opt_int(name)
        if value is None:
            raise bad_request(f"{name} is empty")
        return value

    def flag(self, name: str) -> bool:
        value = self.values.get(name, False)
        if not isinstance(value, bool):
            raise bad_request(f'field "{name}" must be a Boolean')
        return value

    def opt_json(self, name: str) -> Any:
        """A JSON-serialized field; a string that failed to decode is reported the way Telegram does."""
        value = self.values.get(name)
        if isinstance(value, str):
            raise bad_request(f"can't parse {name} JSON object")
        return value

    def chat_id(self) -> int:
        value = self.values.get("chat_id")
        if value is None or value == "":
            raise bad_request("chat_id is empty")
        if isinstance(value, bool) or not isinstance(value, int):
            # "@channelusername": the fake only has private chats, so no username resolves.
            raise bad_request("chat not found")
        return value

    def input_file(self, name: str) -> str | UploadedFile | None:
        """A file field: a file_id or URL string, or an upload (direct field or attach://<part>)."""
        if name in self.files:
            return self.files[name]
        value = self.opt_str(name)
        if value is not None and value.startswith(_ATTACH):
            upload = self.files.get(value.removeprefix(_ATTACH))
            if upload is None:
                raise bad_request("wrong file identifier/HTTP URL specified")
            return upload
        return value

    def attachment(self, value: str) -> str | UploadedFile:
        """Resolve a `media` string inside a JSON field (sendMediaGroup) to its upload, if it is one."""
        if not value.startswith(_ATTACH):
            return value
        upload = self.files.get(value.removeprefix(_ATTACH))
        if upload is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return upload


def _form_values(form: MultiMapping[Any]) -> JSONObject:
    return {name: value for name, value in form.items() if isinstance(value, str)}
