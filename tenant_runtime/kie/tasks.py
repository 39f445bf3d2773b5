"""KIE's task, as recordInfo and callbacks describe it: lenient wire models with JSON strings parsed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from shared import strict

TaskState = Literal["waiting", "queuing", "generating", "success", "fail"]
FINAL_STATES: frozenset[str] = frozenset({"success", "fail"})


def _json_object(value: object) -> object:
    """KIE sends `param` and `resultJson` as JSON *strings*; "" and null mean nothing."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            # A string inside the callback body, so bounded like the body itself.
            return strict.loads(value, storable=True)
        except strict.JsonError:
            raise ValueError("not a JSON document") from None
    return value


def _optional_text(value: object) -> object:
    if value is None or value == "":
        return None
    return str(value) if isinstance(value, int | float) else value


def _epoch_ms(value: object) -> object:
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, int | float | str):
        try:
            return datetime.fromtimestamp(float(value) / 1000, tz=UTC)
        except (OverflowError, OSError):  # far outside any real date: pydantic reports ValueErrors only
            raise ValueError("not a time in milliseconds since the epoch") from None
    return value


def _known_state(value: object) -> object:
    # KIE may add states; an unknown one is treated as still running, so pollers keep going until
    # their own deadline instead of crashing on a new word.
    return value if value in get_args(TaskState) else "generating"


JsonObject = Annotated[dict[str, Any], BeforeValidator(_json_object)]
OptionalText = Annotated[str | None, BeforeValidator(_optional_text)]
EpochMs = Annotated[datetime | None, BeforeValidator(_epoch_ms)]


def _alias(camel: str, snake: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(camel, snake))


class TaskInfo(BaseModel):
    """A task as recordInfo (or a callback's `data`) describes it, JSON strings already parsed."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    task_id: str = Field(validation_alias=AliasChoices("taskId", "task_id"))
    model: str = ""
    state: Annotated[TaskState, BeforeValidator(_known_state)]
    param: JsonObject = Field(default_factory=dict)
    result_urls: list[str] = Field(default_factory=list)
    result_object: dict[str, Any] | None = None
    fail_code: OptionalText = _alias("failCode", "fail_code")
    fail_msg: OptionalText = _alias("failMsg", "fail_msg")
    cost_time_ms: float | None = _alias("costTime", "cost_time")
    create_time: EpochMs = _alias("createTime", "create_time")
    update_time: EpochMs = _alias("updateTime", "update_time")
    complete_time: EpochMs = _alias("completeTime", "complete_time")

    @model_validator(mode="before")
    @classmethod
    def _unpack_result_json(cls, raw: Any) -> Any:
        if not isinstance(raw, Mapping) or "result_urls" in raw:
            return raw
        result = _json_object(raw.get("resultJson", raw.get("result_json")))
        if not isinstance(result, Mapping):
            raise ValueError("resultJson is not a JSON object")
        return {**raw, "result_urls": result.get("resultUrls") or [], "result_object": result.get("resultObject")}

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


class CallbackPayload(BaseModel):
    """The body KIE POSTs to `callBackUrl` when a task ends."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    code: int
    message: str = ""
    task: TaskInfo
    consume_credits: Decimal | None = None
    remained_credits: Decimal | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_wire(cls, raw: Any) -> Any:
        if not isinstance(raw, Mapping) or "task" in raw:
            return raw
        code = raw.get("code")
        message = raw.get("msg") or raw.get("message") or ""
        data = dict(raw["data"]) if isinstance(raw.get("data"), Mapping) else {}
        # Older shapes: the task id at the top level, no state (then the code tells the outcome).
        if "taskId" not in data and "task_id" not in data:
            data["taskId"] = raw.get("taskId", raw.get("task_id"))
        if not data.get("state"):
            data["state"] = "success" if code == 200 else "fail"
        if data["state"] == "fail" and not (data.get("failCode") or data.get("fail_code")):
            data["failCode"] = str(code)
            data.setdefault("failMsg", message)
        return {
            "code": code,
            "message": message,
            "task": data,
            "consume_credits": data.get("consumeCredits", data.get("consume_credits")),
            "remained_credits": data.get("remainedCredits", data.get("remained_credits")),
        }

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def state(self) -> TaskState:
        return self.task.state


def describe(exc: ValidationError) -> str:
    """Where validation failed, without echoing the (possibly large) input back."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)
    )
