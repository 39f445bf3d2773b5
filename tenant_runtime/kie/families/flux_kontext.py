"""Flux Kontext: `POST flux/kontext/generate`, `GET flux/kontext/record-info`.

Docs (docs.kie.ai/flux-kontext-api, read 2026-11-29): body `prompt` (English only; `enableTranslation`
translates), `model` flux-kontext-pro | flux-kontext-max, `aspectRatio` 21:9 16:9 4:3 1:1 3:4 9:16
(default 16:9; when editing, omitted keeps the input's ratio), `inputImage` (editing mode),
`outputFormat` jpeg | png, `callBackUrl`. Status `data`: `successFlag` 0 generating, 1 success,
2 create failed, 3 generation failed; `response.resultImageUrl`; `errorCode`, `errorMessage`;
times are ISO strings here. Callback `{code, msg, data: {taskId, info: {originImageUrl,
resultImageUrl}}}`: 200 success, 400 prompt flagged by the content policy, 500 internal error (try
again later), 501 generation failed; retried 3 times (1, 5, 15 minutes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from tenant_runtime.kie.families.base import Family, reason_from_text
from tenant_runtime.kie.families.report import TaskReport
from tenant_runtime.kie.families.wire import (
    Callback,
    Lenient,
    OptionalText,
    Url,
    callback_model,
    status_model,
    success_flag_state,
)

__all__ = ["FluxKontext"]


class _Images(Lenient):
    result_image_url: Url | None = Field(default=None, alias="resultImageUrl")


class _Status(Lenient):
    task_id: str = Field(alias="taskId", min_length=1)
    success_flag: int = Field(alias="successFlag")
    response: _Images | None = None
    error_code: OptionalText = Field(default=None, alias="errorCode")
    error_message: OptionalText = Field(default=None, alias="errorMessage")


class _CallbackData(Lenient):
    task_id: str = Field(alias="taskId", min_length=1)
    info: _Images | None = None


class FluxKontext(Family):
    name = "flux_kontext"
    operations: ClassVar[Mapping[str, str]] = {
        "flux/kontext": "flux/kontext/generate",
        "flux/kontext-edit": "flux/kontext/generate",
    }
    status_path = "flux/kontext/record-info"

    def request(self, model: str, values: Mapping[str, Any], callback_url: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": values["prompt"], "model": values["model"], "enableTranslation": True}
        if values.get("aspect_ratio"):
            body["aspectRatio"] = values["aspect_ratio"]
        if values.get("image_url"):
            body["inputImage"] = values["image_url"]
        if callback_url:
            body["callBackUrl"] = callback_url
        return body

    def parse_status(self, data: object) -> TaskReport:
        status = status_model(_Status, data, "flux_kontext_status")
        state = success_flag_state(status.success_flag)
        image = status.response.result_image_url if status.response else None
        return TaskReport.from_status(
            status.task_id,
            state,
            (image,) if image else (),
            missing="an image",
            fail_code=status.error_code,
            fail_msg=status.error_message,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskReport:
        callback = callback_model(Callback[_CallbackData], body)
        image = callback.data.info.result_image_url if callback.data.info else None
        return TaskReport.from_callback(callback.data.task_id, callback.code, callback.msg, (image,) if image else ())

    def reason(self, report: TaskReport) -> str:
        if report.fail_code == "400":
            return "content"
        if report.fail_code == "500":
            return "busy"
        return reason_from_text(report)
