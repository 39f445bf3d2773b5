"""Runway: `POST runway/generate`, `GET runway/record-detail`.

Docs (docs.kie.ai/runway-api, read 2026-11-29): body `prompt`, `duration` 5 | 10 seconds, `quality`
720p | 1080p (1080p cannot be 10 seconds, nor 10 seconds 1080p), `aspectRatio` 16:9 | 4:3 | 1:1 |
3:4 | 9:16 (required without `imageUrl`), `imageUrl`, `waterMark` ("" for none), `callBackUrl`. One
version of the generate page shows 5 or 8 seconds and a `model` field instead; the quickstart, the
parameter details and the price table use duration and quality, which is what is sent. Status `data`:
`state` wait | queueing | generating | success | fail, `videoInfo.videoUrl`, `failCode`, `failMsg`.
Callback `{code, msg, data: {task_id, video_id, video_url, image_url}}`: 200 success, 400 bad
parameters or inappropriate content, 500 server error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from tenant_runtime.kie.families.base import Family, reason_from_text
from tenant_runtime.kie.families.report import TaskReport, TaskState
from tenant_runtime.kie.families.wire import Callback, Lenient, OptionalText, Url, callback_model, status_model

__all__ = ["Runway"]

_STATES: dict[str, TaskState] = {
    "wait": "waiting",
    "queueing": "queuing",
    "generating": "generating",
    "success": "success",
    "fail": "fail",
}


class _Video(Lenient):
    video_url: Url | None = Field(default=None, alias="videoUrl")


class _Status(Lenient):
    task_id: str = Field(alias="taskId", min_length=1)
    state: str
    video_info: _Video | None = Field(default=None, alias="videoInfo")
    fail_code: OptionalText = Field(default=None, alias="failCode")
    fail_msg: OptionalText = Field(default=None, alias="failMsg")


class _CallbackData(Lenient):
    task_id: str = Field(min_length=1)
    video_url: Url | None = None


class Runway(Family):
    name = "runway"
    operations: ClassVar[Mapping[str, str]] = {"runway/gen-4": "runway/generate"}
    status_path = "runway/record-detail"

    def request(self, model: str, values: Mapping[str, Any], callback_url: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": values["prompt"],
            "duration": int(values["duration"]),
            "quality": values["resolution"],
            "aspectRatio": values["aspect_ratio"],
            "waterMark": "",
        }
        if values.get("image_url"):
            body["imageUrl"] = values["image_url"]
        if callback_url:
            body["callBackUrl"] = callback_url
        return body

    def parse_status(self, data: object) -> TaskReport:
        status = status_model(_Status, data, "runway_status")
        state = _STATES.get(status.state, "generating")  # a new word: keep polling until the deadline
        video = status.video_info.video_url if status.video_info else None
        return TaskReport.from_status(
            status.task_id,
            state,
            (video,) if video else (),
            missing="a video",
            fail_code=status.fail_code,
            fail_msg=status.fail_msg,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskReport:
        callback = callback_model(Callback[_CallbackData], body)
        video = callback.data.video_url
        return TaskReport.from_callback(callback.data.task_id, callback.code, callback.msg, (video,) if video else ())

    def reason(self, report: TaskReport) -> str:
        if report.fail_code == "500":
            return "busy"
        return reason_from_text(report)
