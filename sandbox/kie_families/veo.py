"""Veo 3.1 as docs.kie.ai/veo3-api describes it (read 2026-11-29), with the 1080p upgrade."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sandbox.kie_families.base import CONTENT_MESSAGE, Action, Lookup, Refusal, TaskView, problems_of

__all__ = ["HD_READY_AFTER_MS", "Veo"]

HD_READY_AFTER_MS = 1_000  # the 1080p version is ready this long after the video (KIE: 1-3 minutes)
_PRICES = {"veo3_fast": Decimal(60), "veo3": Decimal(250)}
_TYPES = ("TEXT_2_VIDEO", "FIRST_AND_LAST_FRAMES_2_VIDEO", "REFERENCE_2_VIDEO")


def _stamp(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


class Veo:
    name = "veo"
    actions: tuple[Action, ...] = (
        Action("veo.generate", "veo/generate", "generate"),
        Action("veo.1080p", "veo/get-1080p-video", "get1080p", method="GET"),
    )
    status_operation = "veo.recordInfo"
    status_path = "veo/record-info"

    def validate(self, action: str, body: Mapping[str, Any]) -> list[str]:
        if action == "get1080p":
            return problems_of(body, required=("taskId",), enums={})
        problems = problems_of(
            body,
            required=("prompt",),
            enums={"model": tuple(_PRICES), "generationType": _TYPES, "aspect_ratio": ("16:9", "9:16", "Auto")},
        )
        images = body.get("imageUrls") or []
        kind = body.get("generationType") or "TEXT_2_VIDEO"
        if kind == "REFERENCE_2_VIDEO":
            if body.get("model", "veo3_fast") != "veo3_fast":
                problems.append("REFERENCE_2_VIDEO is supported by veo3_fast only")
            if body.get("aspect_ratio", "16:9") not in ("16:9", "9:16"):
                problems.append("REFERENCE_2_VIDEO supports 16:9 and 9:16 only")
            if not images:
                problems.append("REFERENCE_2_VIDEO needs imageUrls")
        if kind == "TEXT_2_VIDEO" and images:
            problems.append("TEXT_2_VIDEO takes no imageUrls")
        return problems

    def cost(self, action: str, body: Mapping[str, Any]) -> Decimal:
        return _PRICES[body.get("model") or "veo3_fast"]

    def kind(self, action: str, body: Mapping[str, Any]) -> str:
        return "video"

    def outputs(self, action: str, body: Mapping[str, Any]) -> int:
        return 1

    def status(self, task: TaskView) -> dict[str, Any]:
        flag = {"success": 1, "fail": 3}.get(task.state, 0)
        response = None
        if task.state == "success":
            response = {"taskId": task.task_id, "resultUrls": list(task.urls), "originUrls": [], "resolution": "720p"}
        return {
            "taskId": task.task_id,
            "paramJson": json.dumps(dict(task.body)),
            "completeTime": _stamp(task.completed_ms),
            "response": response,
            "successFlag": flag,
            "errorCode": None if task.state != "fail" else (400 if task.content_failure else 501),
            "errorMessage": task.fail_msg if task.state == "fail" else "",
            "createTime": _stamp(task.created_ms),
            "fallbackFlag": False,
        }

    def callbacks(self, task: TaskView) -> list[dict[str, Any]]:
        if task.state == "success":
            info = {"resultUrls": list(task.urls), "originUrls": [], "resolution": "720p"}
            data = {"taskId": task.task_id, "info": info, "fallbackFlag": False}
            return [{"code": 200, "msg": "Veo3.1 video generated successfully.", "data": data}]
        code, msg = (400, CONTENT_MESSAGE) if task.content_failure else (501, "Video generation task failed")
        return [{"code": code, "msg": msg, "data": {"taskId": task.task_id, "info": None, "fallbackFlag": False}}]

    def query(self, action: str, params: Mapping[str, str], lookup: Lookup, now_ms: int) -> dict[str, Any]:
        parent = lookup(params.get("taskId", ""))
        if parent is None or parent.action != "generate":
            raise Refusal(404, "task not found")
        if not params.get("index", "0").isdigit() or int(params.get("index", "0")) >= max(1, len(parent.urls)):
            raise Refusal(422, "index out of range")
        if parent.state != "success" or parent.completed_ms is None:
            raise Refusal(422, "the original video is not ready")
        if now_ms < parent.completed_ms + HD_READY_AFTER_MS:
            raise Refusal(422, "1080P is processing. It should be ready in 1-3 minutes. Please check back shortly.")
        return {"resultUrl": f"{parent.urls[0]}?resolution=1080p"}
