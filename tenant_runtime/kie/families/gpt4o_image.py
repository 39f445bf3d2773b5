"""4o Image (GPT-Image-1): `POST gpt4o-image/generate`, `GET gpt4o-image/record-info`.

Docs (docs.kie.ai/4o-image-api, read 2026-11-29): body `prompt`, `size` (1:1, 3:2, 2:3), `nVariants`
(1, 2, 4), `filesUrl` (up to 5 images), `callBackUrl`. Status `data`: `successFlag` 0 generating,
1 success, 2 failed, `status` GENERATING | SUCCESS | CREATE_TASK_FAILED | GENERATE_FAILED,
`response.resultUrls`, `errorCode`, `errorMessage`. Callback: `{code, msg, data: {taskId,
info: {result_urls}}}`; code 200 success, 400 content policy or unusable input image, 451 input
image not downloadable, 500 server error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from tenant_runtime.kie.families.base import Family, reason_from_text
from tenant_runtime.kie.families.report import TaskReport, TaskState
from tenant_runtime.kie.families.wire import Callback, Lenient, OptionalText, Urls, callback_model, status_model

__all__ = ["Gpt4oImage"]

_FAILED = frozenset({"CREATE_TASK_FAILED", "GENERATE_FAILED"})


class _Response(Lenient):
    result_urls: Urls = Field(default=(), alias="resultUrls")


class _Status(Lenient):
    task_id: str = Field(alias="taskId", min_length=1)
    success_flag: int | None = Field(default=None, alias="successFlag")
    status: OptionalText = None
    response: _Response | None = None
    error_code: OptionalText = Field(default=None, alias="errorCode")
    error_message: OptionalText = Field(default=None, alias="errorMessage")


class _Info(Lenient):
    result_urls: Urls = ()


class _CallbackData(Lenient):
    task_id: str = Field(alias="taskId", min_length=1)
    info: _Info | None = None


def _state(flag: int | None, status: str | None) -> TaskState:
    if status == "SUCCESS" or flag == 1:
        return "success"
    if (status or "") in _FAILED or flag in (2, 3):
        return "fail"
    return "generating"


class Gpt4oImage(Family):
    name = "gpt4o_image"
    operations: ClassVar[Mapping[str, str]] = {"openai/4o-image": "gpt4o-image/generate"}
    status_path = "gpt4o-image/record-info"

    def request(self, model: str, values: Mapping[str, Any], callback_url: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": values["prompt"], "size": values["size"], "nVariants": 1}
        if values.get("image_urls"):
            body["filesUrl"] = list(values["image_urls"])
        if callback_url:
            body["callBackUrl"] = callback_url
        return body

    def parse_status(self, data: object) -> TaskReport:
        status = status_model(_Status, data, "gpt4o_image_status")
        state = _state(status.success_flag, status.status)
        outputs = status.response.result_urls if status.response else ()
        return TaskReport.from_status(
            status.task_id,
            state,
            outputs,
            missing="images",
            fail_code=status.error_code or status.status,
            fail_msg=status.error_message,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskReport:
        callback = callback_model(Callback[_CallbackData], body)
        data = callback.data
        outputs = data.info.result_urls if data.info else ()
        return TaskReport.from_callback(data.task_id, callback.code, callback.msg, outputs)

    def reason(self, report: TaskReport) -> str:
        if report.fail_code == "400":
            return "content"
        if report.fail_code == "451":
            return "invalid"
        return reason_from_text(report)
