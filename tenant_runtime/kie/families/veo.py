"""Veo 3.1: `POST veo/generate`, `GET veo/record-info`; the 1080p version through `GET veo/get-1080p-video`.

Docs (docs.kie.ai/veo3-api, read 2026-11-29): body `prompt`, `model` veo3 (Quality) | veo3_fast,
`generationType` TEXT_2_VIDEO | FIRST_AND_LAST_FRAMES_2_VIDEO | REFERENCE_2_VIDEO (material images,
Fast model only, 16:9 and 9:16 only), `aspect_ratio` 16:9 | 9:16 | Auto, `imageUrls`,
`enableTranslation`, `callBackUrl`. Status `data`: `successFlag` 0 generating, 1 success, 2 failed,
3 generation failed; `response.resultUrls`; `errorCode`, `errorMessage`; times as "YYYY-MM-DD hh:mm:ss".
Callback `{code, msg, data: {taskId, info: {resultUrls, originUrls, resolution}, fallbackFlag}}`: 200
success, 400 prompt or image refused (content policy, unsafe upload, unreachable image), 422 refused
upstream, 500 internal error or timeout, 501 failed. 1080p: `GET veo/get-1080p-video?taskId&index`
answers `data.resultUrl` once ready (1-3 minutes after the video) and a non-200 code before; no
extra credits are documented for it (4K is the upgrade that costs extra, "approximately 2x a Fast
generation", so it is not sold).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from tenant_runtime.kie.client import KieClient
from tenant_runtime.kie.errors import KieAuthError, KieError, KieInsufficientCreditsError, KieRateLimitedError
from tenant_runtime.kie.families.base import Family, TaskRef, TaskRequest, reason_from_text
from tenant_runtime.kie.families.report import TaskReport
from tenant_runtime.kie.families.wire import (
    Callback,
    Lenient,
    OptionalText,
    Url,
    Urls,
    callback_model,
    status_model,
    success_flag_state,
)

__all__ = ["GENERATE", "HD_1080P", "Veo"]

GENERATE = "google/veo-3.1"
HD_1080P = "google/veo-3.1/1080p"


class _Videos(Lenient):
    result_urls: Urls = Field(default=(), alias="resultUrls")


class _Status(Lenient):
    task_id: str = Field(alias="taskId", min_length=1)
    success_flag: int = Field(alias="successFlag")
    response: _Videos | None = None
    error_code: OptionalText = Field(default=None, alias="errorCode")
    error_message: OptionalText = Field(default=None, alias="errorMessage")


class _CallbackData(Lenient):
    task_id: str = Field(alias="taskId", min_length=1)
    info: _Videos | None = None


class _Hd(Lenient):
    result_url: Url = Field(alias="resultUrl")


class Veo(Family):
    name = "veo"
    operations: ClassVar[Mapping[str, str]] = {GENERATE: "veo/generate", HD_1080P: "veo/get-1080p-video"}
    status_path = "veo/record-info"

    def request(self, model: str, values: Mapping[str, Any], callback_url: str | None) -> dict[str, Any]:
        if model == HD_1080P:
            return {"taskId": values["parent_task"], "index": 0}
        body: dict[str, Any] = {
            "prompt": values["prompt"],
            "model": values["model"],
            "generationType": values["generation_type"],
            "aspect_ratio": values["aspect_ratio"],
            "enableTranslation": True,
        }
        if values.get("image_urls"):
            body["imageUrls"] = list(values["image_urls"])
        if callback_url:
            body["callBackUrl"] = callback_url
        return body

    async def create(self, kie: KieClient, api_key: str, request: TaskRequest) -> str:
        if request.model != HD_1080P:
            return await super().create(kie, api_key, request)
        # Asking for the 1080p version starts nothing KIE gives an id to: the job's "task" is that
        # question, asked again by the poller until the answer carries the file.
        return f"1080p-{secrets.token_hex(12)}"

    async def status(self, kie: KieClient, api_key: str, ref: TaskRef) -> TaskReport:
        if ref.model != HD_1080P:
            return await super().status(kie, api_key, ref)
        params = {"taskId": str(ref.values["parent_task"]), "index": "0"}
        try:
            data = await kie.read(api_key, self.operations[HD_1080P], params, operation="veo_1080p")
        except (KieAuthError, KieInsufficientCreditsError, KieRateLimitedError):
            raise
        except KieError as exc:
            # Not ready yet (KIE answers non-200 until it is); the job's deadline bounds the wait.
            return TaskReport(ref.task_id, "generating", fail_code=str(exc.code), fail_msg=exc.message)
        return TaskReport(ref.task_id, "success", outputs=(status_model(_Hd, data, "veo_1080p").result_url,))

    def parse_status(self, data: object) -> TaskReport:
        status = status_model(_Status, data, "veo_status")
        state = success_flag_state(status.success_flag)
        outputs = status.response.result_urls if status.response else ()
        return TaskReport.from_status(
            status.task_id,
            state,
            outputs,
            missing="a video",
            fail_code=status.error_code,
            fail_msg=status.error_message,
        )

    def parse_callback(self, body: Mapping[str, Any]) -> TaskReport:
        callback = callback_model(Callback[_CallbackData], body)
        outputs = callback.data.info.result_urls if callback.data.info else ()
        return TaskReport.from_callback(callback.data.task_id, callback.code, callback.msg, outputs)

    def reason(self, report: TaskReport) -> str:
        if report.fail_code in ("400", "422"):
            return "content"
        if report.fail_code == "500":
            return "busy"
        return reason_from_text(report)
