"""The jobs API (`/api/v1/jobs/createTask`, `recordInfo`): every model KIE serves by model id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from tenant_runtime.kie.client import KieClient
from tenant_runtime.kie.families.base import Family, TaskRef, TaskRequest
from tenant_runtime.kie.families.report import TaskReport
from tenant_runtime.kie.families.wire import callback_model, status_model
from tenant_runtime.kie.tasks import CallbackPayload, TaskInfo

__all__ = ["JobsFamily", "report_of"]


def report_of(info: TaskInfo) -> TaskReport:
    text = None
    if info.result_object is not None:
        text = str(info.result_object.get("text") or info.result_object)
    return TaskReport(
        task_id=info.task_id,
        state=info.state,
        outputs=tuple(info.result_urls) if info.state == "success" else (),
        text=text if info.state == "success" else None,
        fail_code=info.fail_code,
        fail_msg=info.fail_msg,
    )


class JobsFamily(Family):
    name = "jobs"
    operations: ClassVar[Mapping[str, str]] = {}
    status_path = "jobs/recordInfo"

    def serves(self, model: str) -> bool:
        return True  # the jobs API takes the model id itself

    def request(self, model: str, values: Mapping[str, Any], callback_url: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "input": dict(values)}
        if callback_url:
            body["callBackUrl"] = callback_url
        return body

    def parse_status(self, data: object) -> TaskReport:
        return report_of(status_model(TaskInfo, data, "record_info"))

    def parse_callback(self, body: Mapping[str, Any]) -> TaskReport:
        return report_of(callback_model(CallbackPayload, body).task)

    async def create(self, kie: KieClient, api_key: str, request: TaskRequest) -> str:
        return await kie.create_task(api_key, request.model, request.values, request.callback_url)

    async def status(self, kie: KieClient, api_key: str, ref: TaskRef) -> TaskReport:
        return report_of(await kie.record_info(api_key, ref.task_id))
