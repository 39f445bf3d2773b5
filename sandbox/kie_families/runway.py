"""Runway as docs.kie.ai/runway-api describes it (read 2026-11-29)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sandbox.kie_families.base import CONTENT_MESSAGE, Action, Lookup, Refusal, TaskView, problems_of

__all__ = ["Runway"]

_PRICES = {(5, "720p"): Decimal(12), (10, "720p"): Decimal(30), (5, "1080p"): Decimal(30)}
_STATES = {"waiting": "wait", "queuing": "queueing", "generating": "generating", "success": "success", "fail": "fail"}


class Runway:
    name = "runway"
    actions: tuple[Action, ...] = (Action("runway.generate", "runway/generate", "generate"),)
    status_operation = "runway.recordDetail"
    status_path = "runway/record-detail"

    def validate(self, action: str, body: Mapping[str, Any]) -> list[str]:
        problems = problems_of(
            body,
            required=("prompt", "duration", "quality"),
            enums={
                "duration": (5, 10),
                "quality": ("720p", "1080p"),
                "aspectRatio": ("16:9", "4:3", "1:1", "3:4", "9:16"),
            },
        )
        if body.get("duration") == 10 and body.get("quality") == "1080p":
            problems.append("a 10-second video cannot be 1080p")
        if not body.get("imageUrl") and not body.get("aspectRatio"):
            problems.append("aspectRatio is required for text-only generation")
        if isinstance(body.get("prompt"), str) and len(body["prompt"]) > 1800:
            problems.append("prompt is longer than 1800 characters")
        return problems

    def cost(self, action: str, body: Mapping[str, Any]) -> Decimal:
        return _PRICES[(body["duration"], body["quality"])]

    def kind(self, action: str, body: Mapping[str, Any]) -> str:
        return "video"

    def outputs(self, action: str, body: Mapping[str, Any]) -> int:
        return 1

    def status(self, task: TaskView) -> dict[str, Any]:
        video = task.urls[0] if task.urls else None
        failed = task.state == "fail"
        return {
            "taskId": task.task_id,
            "parentTaskId": "",
            "generateParam": {
                "prompt": task.body.get("prompt"),
                "imageUrl": task.body.get("imageUrl"),
                "expandPrompt": True,
            },
            "state": _STATES[task.state],
            "generateTime": "2026-11-29 00:00:00",
            "videoInfo": {"videoId": f"{task.task_id}-v", "taskId": task.task_id, "videoUrl": video, "imageUrl": None}
            if task.state == "success"
            else None,
            "failCode": (400 if task.content_failure else 500) if failed else "",
            "failMsg": task.fail_msg if failed else "",
            "expireFlag": 0,
        }

    def callbacks(self, task: TaskView) -> list[dict[str, Any]]:
        if task.state == "success":
            video = task.urls[0] if task.urls else None
            data = {"task_id": task.task_id, "video_id": f"{task.task_id}-v", "video_url": video, "image_url": None}
            return [{"code": 200, "msg": "All generated successfully.", "data": data}]
        code, msg = (
            (400, CONTENT_MESSAGE) if task.content_failure else (500, "Generation failed, please try again later")
        )
        return [{"code": code, "msg": msg, "data": {"task_id": task.task_id}}]

    def query(self, action: str, params: Mapping[str, str], lookup: Lookup, now_ms: int) -> dict[str, Any]:
        raise Refusal(404, "no such endpoint")
