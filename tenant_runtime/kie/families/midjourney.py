"""Midjourney: `POST mj/generate` (four images), `mj/generateUpscale` and `mj/generateVary` on one
of them, `GET mj/record-info` for all three.

Docs (docs.kie.ai/mj-api, read 2026-11-29): generate body `taskType` mj_txt2img | mj_img2img |
mj_video, `prompt` (2000 characters), `speed` relaxed | fast | turbo, `aspectRatio` 1:2 9:16 2:3 3:4
5:6 6:5 4:3 3:2 1:1 16:9 2:1, `version` 7 | 6.1 | 6 | 5.2 | 5.1 | niji6, `enableTranslation`,
`callBackUrl`. Upscale `{taskId, imageIndex 0-3, callBackUrl}`; Vary `{taskId, imageIndex 1-4,
callBackUrl}` (the two pages number the images differently; each is followed). Status `data`:
`successFlag` 0 generating, 1 success, 2 create failed, 3 generation failed; `resultInfoJson.resultUrls[]
.resultUrl`; `errorCode`, `errorMessage`. Callback `{code, msg, data: {taskId, promptJson,
resultUrls}}`: 200 success, 500 failure. The docs give no price for upscale and vary, so the registry
declares them unpriced (not sold) until KIE publishes one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field

from tenant_runtime.kie.families.base import Family, reason_from_text
from tenant_runtime.kie.families.report import TaskReport
from tenant_runtime.kie.families.wire import (
    MAX_OUTPUTS,
    Callback,
    Lenient,
    OptionalText,
    Url,
    Urls,
    callback_model,
    json_string,
    status_model,
    success_flag_state,
)

__all__ = ["GENERATE", "UPSCALE", "VARY", "Midjourney"]

GENERATE = "midjourney/api"
UPSCALE = "midjourney/upscale"
VARY = "midjourney/vary"


class _Result(Lenient):
    result_url: Url = Field(alias="resultUrl")


class _Results(Lenient):
    result_urls: list[_Result] = Field(default_factory=list, alias="resultUrls", max_length=MAX_OUTPUTS)


class _Status(Lenient):
    task_id: str = Field(alias="taskId", min_length=1)
    success_flag: int = Field(alias="successFlag")
    result_info: Annotated[_Results | None, BeforeValidator(json_string)] = Field(default=None, alias="resultInfoJson")
    error_code: OptionalText = Field(default=None, alias="errorCode")
    error_message: OptionalText = Field(default=None, alias="errorMessage")


class _CallbackData(Lenient):
    task_id: str = Field(alias="taskId", min_length=1)
    result_urls: Urls = Field(default=(), alias="resultUrls")


class Midjourney(Family):
    name = "midjourney"
    operations: ClassVar[Mapping[str, str]] = {
        GENERATE: "mj/generate",
        UPSCALE: "mj/generateUpscale",
        VARY: "mj/generateVary",
    }
    status_path = "mj/record-info"

    def request(self, model: str, values: Mapping[str, Any], callback_url: str | None) -> dict[str, Any]:
        body: dict[str, Any]
        if model == GENERATE:
            body = {
                "taskType": "mj_txt2img",
                "prompt": values["prompt"],
                "speed": values["speed"],
                "aspectRatio": values["aspect_ratio"],
                "version": values["version"],
                "enableTranslation": True,
            }
        else:
            # The user counts results from 1; Upscale counts from 0 and Vary from 1 (their docs).
            index = int(values["index"])
            body = {"taskId": values["parent_task"], "imageIndex": index - 1 if model == UPSCALE else index}
        if callback_url:
            body["callBackUrl"] = callback_url
        return body

    def parse_status(self, data: object) -> TaskReport:
        status = status_model(_Status, data, "midjourney_status")
        state = success_flag_state(status.success_flag)
        urls = tuple(r.result_url for r in status.result_info.result_urls) if status.result_info else ()
        return TaskReport.from_status(
            status.task_id, state, urls, missing="images", fail_code=status.error_code, fail_msg=status.error_message
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskReport:
        callback = callback_model(Callback[_CallbackData], body)
        return TaskReport.from_callback(callback.data.task_id, callback.code, callback.msg, callback.data.result_urls)

    def reason(self, report: TaskReport) -> str:
        return reason_from_text(report)
