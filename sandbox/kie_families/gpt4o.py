"""4o Image as docs.kie.ai/4o-image-api describes it (read 2026-11-29)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sandbox.kie_families.base import CONTENT_MESSAGE, Action, Lookup, Refusal, TaskView, problems_of

__all__ = ["Gpt4o"]

_STATUS = {"success": "SUCCESS", "fail": "GENERATE_FAILED"}
_FLAG = {"success": 1, "fail": 2}


class Gpt4o:
    name = "gpt4o_image"
    actions: tuple[Action, ...] = (Action("gpt4o.generate", "gpt4o-image/generate", "generate"),)
    status_operation = "gpt4o.recordInfo"
    status_path = "gpt4o-image/record-info"

    def validate(self, action: str, body: Mapping[str, Any]) -> list[str]:
        problems = problems_of(body, required=("size",), enums={"size": ("1:1", "3:2", "2:3"), "nVariants": (1, 2, 4)})
        files = body.get("filesUrl")
        if not body.get("prompt") and not files:
            problems.append("prompt or filesUrl is required")
        if files is not None and (not isinstance(files, list) or len(files) > 5):
            problems.append("filesUrl takes at most 5 image URLs")
        return problems

    def cost(self, action: str, body: Mapping[str, Any]) -> Decimal:
        return Decimal(6)

    def kind(self, action: str, body: Mapping[str, Any]) -> str:
        return "image"

    def outputs(self, action: str, body: Mapping[str, Any]) -> int:
        return int(body.get("nVariants") or 1)

    def status(self, task: TaskView) -> dict[str, Any]:
        done = task.state in ("success", "fail")
        return {
            "taskId": task.task_id,
            "paramJson": json.dumps(dict(task.body)),
            "completeTime": task.completed_ms,
            "response": {"resultUrls": list(task.urls)} if task.state == "success" else None,
            "successFlag": _FLAG.get(task.state, 0),
            "status": _STATUS.get(task.state, "GENERATING"),
            "errorCode": task.fail_code if task.state == "fail" else None,
            "errorMessage": task.fail_msg if task.state == "fail" else "",
            "createTime": task.created_ms,
            "progress": "1.00" if done else "0.50",
        }

    def callbacks(self, task: TaskView) -> list[dict[str, Any]]:
        if task.state == "success":
            return [
                {
                    "code": 200,
                    "msg": "Gpt4o-image generated successfully.",
                    "data": {"taskId": task.task_id, "info": {"result_urls": list(task.urls)}},
                }
            ]
        code, msg = (400, CONTENT_MESSAGE) if task.content_failure else (500, task.fail_msg)
        return [{"code": code, "msg": msg, "data": {"taskId": task.task_id, "info": None}}]

    def query(self, action: str, params: Mapping[str, str], lookup: Lookup, now_ms: int) -> dict[str, Any]:
        raise Refusal(404, "no such endpoint")
