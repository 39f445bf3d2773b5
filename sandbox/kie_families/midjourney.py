"""Midjourney as docs.kie.ai/mj-api describes it (read 2026-11-29): generate, upscale, vary."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sandbox.kie_families.base import Action, Lookup, Refusal, TaskView, problems_of

__all__ = ["Midjourney"]

_SPEEDS = {"relaxed": Decimal(3), "fast": Decimal(8), "turbo": Decimal(16)}
_RATIOS = ("1:2", "9:16", "2:3", "3:4", "5:6", "6:5", "4:3", "3:2", "1:1", "16:9", "2:1")
_VERSIONS = ("7", "6.1", "6", "5.2", "5.1", "niji6")
# KIE publishes no price for these two; the fake charges something so a test can see the money move.
_FOLLOW_UP_COST = {"upscale": Decimal(2), "vary": Decimal(8)}


class Midjourney:
    name = "midjourney"
    actions: tuple[Action, ...] = (
        Action("mj.generate", "mj/generate", "generate"),
        Action("mj.upscale", "mj/generateUpscale", "upscale"),
        Action("mj.vary", "mj/generateVary", "vary"),
    )
    status_operation = "mj.recordInfo"
    status_path = "mj/record-info"

    def validate(self, action: str, body: Mapping[str, Any]) -> list[str]:
        if action != "generate":
            low, high = (0, 3) if action == "upscale" else (1, 4)
            problems = problems_of(body, required=("taskId",), enums={})
            index = body.get("imageIndex")
            if not isinstance(index, int) or isinstance(index, bool) or not low <= index <= high:
                problems.append(f"imageIndex must be {low}-{high}")
            return problems
        problems = problems_of(
            body,
            required=("taskType", "prompt"),
            enums={
                "taskType": ("mj_txt2img", "mj_img2img", "mj_video"),
                "speed": tuple(_SPEEDS),
                "aspectRatio": _RATIOS,
                "version": _VERSIONS,
            },
        )
        if body.get("taskType") != "mj_video" and not body.get("speed"):
            problems.append("speed is required for images")
        if isinstance(body.get("prompt"), str) and len(body["prompt"]) > 2000:
            problems.append("prompt is longer than 2000 characters")
        return problems

    def cost(self, action: str, body: Mapping[str, Any]) -> Decimal:
        return _FOLLOW_UP_COST.get(action) or _SPEEDS[body.get("speed") or "fast"]

    def kind(self, action: str, body: Mapping[str, Any]) -> str:
        return "image"

    def outputs(self, action: str, body: Mapping[str, Any]) -> int:
        return 1 if action == "upscale" else 4

    def status(self, task: TaskView) -> dict[str, Any]:
        flag = {"success": 1, "fail": 3}.get(task.state, 0)
        failed = task.state == "fail"
        return {
            "taskId": task.task_id,
            "taskType": {"generate": "mj_txt2img", "upscale": "mj_upscale", "vary": "mj_vary"}[task.action],
            "paramJson": json.dumps(dict(task.body)),
            "completeTime": task.completed_ms,
            "resultInfoJson": {"resultUrls": [{"resultUrl": url} for url in task.urls]},
            "successFlag": flag,
            "createTime": task.created_ms,
            "errorCode": 500 if failed else None,
            "errorMessage": task.fail_msg if failed else None,
        }

    def callbacks(self, task: TaskView) -> list[dict[str, Any]]:
        data = {"taskId": task.task_id, "promptJson": json.dumps(dict(task.body)), "resultUrls": list(task.urls)}
        if task.state == "success":
            return [{"code": 200, "msg": "success", "data": data}]
        return [{"code": 500, "msg": task.fail_msg, "data": data}]

    def query(self, action: str, params: Mapping[str, str], lookup: Lookup, now_ms: int) -> dict[str, Any]:
        raise Refusal(404, "no such endpoint")
