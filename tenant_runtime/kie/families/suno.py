"""Suno music: `POST generate`, `GET generate/record-info`; two tracks per task.

Docs (docs.kie.ai/suno-api, read 2026-11-29): body `customMode` and `instrumental` (booleans, both
required), `model` V3_5 | V4 | V4_5 | V4_5PLUS | V5, `callBackUrl` (required). Without custom mode
only `prompt` (a description, at most 500 characters); in custom mode `style` and `title` (80
characters), and `prompt` as the lyrics unless instrumental (V5: lyrics 5000, style 1000 characters).
Status `data`: `status` PENDING | TEXT_SUCCESS | FIRST_SUCCESS | SUCCESS | CREATE_TASK_FAILED |
GENERATE_AUDIO_FAILED | CALLBACK_EXCEPTION | SENSITIVE_WORD_ERROR, `response.sunoData[]` with
`audioUrl`, `errorCode`, `errorMessage`. Callbacks arrive three times: `{code, msg, data:
{callbackType: text | first | complete, task_id, data: [{audio_url, stream_audio_url, image_url,
title, duration, …}]}}`; only "complete" carries every track; a failure has a non-200 code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from tenant_runtime.kie.families.base import Family, reason_from_text
from tenant_runtime.kie.families.report import TaskReport, TaskState
from tenant_runtime.kie.families.wire import (
    MAX_OUTPUTS,
    Callback,
    Lenient,
    OptionalText,
    Url,
    callback_model,
    status_model,
)

__all__ = ["Suno"]

MODEL_VERSIONS = {"suno/v5": "V5"}
_RUNNING = frozenset({"PENDING", "TEXT_SUCCESS", "FIRST_SUCCESS"})
_CONTENT = frozenset({"SENSITIVE_WORD_ERROR"})


class _Track(Lenient):
    audio_url: Url | None = Field(default=None, alias="audioUrl")


class _Tracks(Lenient):
    suno_data: list[_Track] | None = Field(default=None, alias="sunoData", max_length=MAX_OUTPUTS)


class _Status(Lenient):
    task_id: str = Field(alias="taskId", min_length=1)
    status: str
    response: _Tracks | None = None
    error_code: OptionalText = Field(default=None, alias="errorCode")
    error_message: OptionalText = Field(default=None, alias="errorMessage")


class _CallbackTrack(Lenient):
    audio_url: Url | None = None


class _CallbackData(Lenient):
    callback_type: OptionalText = Field(default=None, alias="callbackType")
    task_id: str = Field(min_length=1)
    data: list[_CallbackTrack] | None = Field(default=None, max_length=MAX_OUTPUTS)


def _urls(tracks: list[_Track] | list[_CallbackTrack] | None) -> tuple[str, ...]:
    return tuple(track.audio_url for track in tracks or () if track.audio_url)


class Suno(Family):
    name = "suno"
    operations: ClassVar[Mapping[str, str]] = {"suno/v5": "generate"}
    status_path = "generate/record-info"

    def request(self, model: str, values: Mapping[str, Any], callback_url: str | None) -> dict[str, Any]:
        custom = bool(values.get("custom_mode"))
        instrumental = bool(values.get("instrumental"))
        body: dict[str, Any] = {"customMode": custom, "instrumental": instrumental, "model": MODEL_VERSIONS[model]}
        if custom:
            body["style"] = values["style"]
            body["title"] = values["title"]
            if not instrumental:
                body["prompt"] = values["lyrics"]
        else:
            body["prompt"] = values["prompt"]
        if callback_url:
            body["callBackUrl"] = callback_url
        return body

    def parse_status(self, data: object) -> TaskReport:
        status = status_model(_Status, data, "suno_status")
        outputs = _urls(status.response.suno_data if status.response else None)
        state: TaskState
        if status.status == "SUCCESS" or (status.status == "CALLBACK_EXCEPTION" and outputs):
            # CALLBACK_EXCEPTION: the tracks were made, only KIE's call to us failed.
            state = "success"
        elif status.status in _RUNNING:
            state = "generating"
        elif status.status.endswith(("FAILED", "ERROR", "EXCEPTION")):
            state = "fail"
        else:
            state = "generating"  # a word KIE adds later: keep polling until the deadline
        return TaskReport.from_status(
            status.task_id,
            state,
            outputs,
            missing="tracks",
            fail_code=status.error_code or status.status,
            fail_msg=status.error_message,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskReport:
        callback = callback_model(Callback[_CallbackData], body)
        data = callback.data
        if callback.code != 200:
            return TaskReport(data.task_id, "fail", fail_code=str(callback.code), fail_msg=callback.msg)
        if data.callback_type != "complete":
            return TaskReport(data.task_id, "generating")  # lyrics written, first track done: not the end
        outputs = _urls(data.data)
        if not outputs:
            return TaskReport(data.task_id, "fail", fail_code="no_result", fail_msg="complete without tracks")
        return TaskReport(data.task_id, "success", outputs=outputs)

    def reason(self, report: TaskReport) -> str:
        if report.fail_code in _CONTENT or report.fail_code == "400":
            return "content"
        if report.fail_code in ("413", "422"):
            return "invalid"
        return reason_from_text(report)
