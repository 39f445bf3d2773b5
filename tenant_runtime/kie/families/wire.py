"""Pydantic pieces shared by the family parsers: KIE's answers are data from the network, so every
field is checked, and what does not fit is an error the caller turns into a 400 or a retry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from shared import strict
from tenant_runtime.kie.errors import KieCallbackError, KieServerError
from tenant_runtime.kie.families.report import TaskState

__all__ = [
    "MAX_OUTPUTS",
    "Callback",
    "JsonObject",
    "Lenient",
    "OptionalText",
    "Url",
    "Urls",
    "callback_model",
    "json_string",
    "status_model",
    "success_flag_state",
    "text_or_none",
]

MAX_OUTPUTS = 10  # no family returns more per task; a longer list is not KIE talking
MAX_URL_CHARS = 4096
_M = TypeVar("_M", bound=BaseModel)


def text_or_none(value: object) -> object:
    """KIE writes "nothing" as null, "" or (for codes) a number."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, int | float) else value


def _url(value: object) -> object:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")) or len(value) > MAX_URL_CHARS:
        raise ValueError("not an http(s) URL")
    return value


def json_string(value: object) -> object:
    """Some answers carry an object as a JSON string."""
    if isinstance(value, str):
        if not value:
            return None
        try:
            return strict.loads(value, storable=True)
        except strict.JsonError:
            raise ValueError("not a JSON document") from None
    return value


OptionalText = Annotated[str | None, BeforeValidator(text_or_none)]
Url = Annotated[str, BeforeValidator(_url)]
Urls = Annotated[tuple[Url, ...], Field(max_length=MAX_OUTPUTS)]
JsonObject = Annotated[dict[str, Any] | None, BeforeValidator(json_string)]


class Lenient(BaseModel):
    """A wire object: frozen, unknown fields ignored (KIE adds fields), known ones checked."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)
    )


def callback_model(cls: type[_M], body: Mapping[str, Any]) -> _M:
    """`body` as `cls`, or KieCallbackError saying where it does not fit (never echoing the body)."""
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        raise KieCallbackError(f"invalid callback: {_describe(exc)}") from None


def status_model(cls: type[_M], data: object, operation: str) -> _M:
    """A status answer's `data` as `cls`; an answer we cannot read is KIE misbehaving (a 5xx)."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise KieServerError(500, f"malformed status data: {_describe(exc)}", operation=operation) from None


_D = TypeVar("_D", bound=BaseModel)


class Callback(Lenient, Generic[_D]):
    """The envelope every dedicated endpoint's callback shares: `code`, `msg`, and the family's `data`."""

    code: int
    msg: OptionalText = None
    data: _D


def success_flag_state(flag: int) -> TaskState:
    """KIE's `successFlag` (Flux Kontext, Midjourney, Veo): 0 generating, 1 success, 2 and 3 failed."""
    if flag == 1:
        return "success"
    return "fail" if flag in (2, 3) else "generating"
