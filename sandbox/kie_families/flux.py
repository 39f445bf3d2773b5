"""Flux Kontext as docs.kie.ai/flux-kontext-api describes it (read 2026-11-29)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sandbox.kie_families.base import CONTENT_MESSAGE, Action, Lookup, Refusal, TaskView, problems_of

__all__ = ["Flux"]

_RATIOS = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
_PRICES = {"flux-kontext-pro": Decimal(4), "flux-kontext-max": Decimal(8)}


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Flux:
    name = "flux_kontext"
    actions: tuple[Action, ...] = (Action("flux.generate", "flux/kontext/generate", "generate"),)
    status_operation = "flux.recordInfo"
    status_path = "flux/kontext/record-info"

    def validate(self, action: str, body: Mapping[str, Any]) -> list[str]:
        problems = problems_of(
            body,
            required=("prompt",),
            enums={"aspectRatio": _RATIOS, "model": tuple(_PRICES), "outputFormat": ("jpeg", "png")},
        )
        image = body.get("inputImage")
        if image is not None and not (isinstance(image, str) and image.startswith(("http://", "https://"))):
            problems.append("inputImage must be an image URL")
        return problems

    def cost(self, action: str, body: Mapping[str, Any]) -> Decimal:
        return _PRICES[body.get("model") or "flux-kontext-pro"]

    def kind(self, action: str, body: Mapping[str, Any]) -> str:
        return "image"

    def outputs(self, action: str, body: Mapping[str, Any]) -> int:
        return 1

    def status(self, task: TaskView) -> dict[str, Any]:
        flag = {"success": 1, "fail": 3}.get(task.state, 0)
        response = None
        if task.state == "success":
            response = {
                "originImageUrl": task.urls[0] if task.urls else None,
                "resultImageUrl": task.urls[0] if task.urls else None,
            }
        return {
            "taskId": task.task_id,
            "paramJson": json.dumps(dict(task.body)),
            "completeTime": _iso(task.completed_ms),
            "response": response,
            "successFlag": flag,
            "errorCode": None if task.state != "fail" else (400 if task.content_failure else 501),
            "errorMessage": task.fail_msg if task.state == "fail" else "",
            "createTime": _iso(task.created_ms),
        }

    def callbacks(self, task: TaskView) -> list[dict[str, Any]]:
        if task.state == "success":
            image = task.urls[0] if task.urls else None
            info = {"originImageUrl": image, "resultImageUrl": image}
            return [
                {
                    "code": 200,
                    "msg": "BFL image generated successfully.",
                    "data": {"taskId": task.task_id, "info": info},
                }
            ]
        code, msg = (400, CONTENT_MESSAGE) if task.content_failure else (501, "Image generation task failed")
        return [{"code": code, "msg": msg, "data": {"taskId": task.task_id, "info": None}}]

    def query(self, action: str, params: Mapping[str, str], lookup: Lookup, now_ms: int) -> dict[str, Any]:
        raise Refusal(404, "no such endpoint")
