"""Suno music generation as docs.kie.ai/suno-api describes it (read 2026-11-29)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sandbox.kie_families.base import Action, Lookup, Refusal, TaskView, problems_of

__all__ = ["Suno"]

_MODELS = ("V3_5", "V4", "V4_5", "V4_5PLUS", "V5")
_OLD = ("V3_5", "V4")  # shorter limits for lyrics (3000) and style (200)
_FAILED = {True: "SENSITIVE_WORD_ERROR", False: "GENERATE_AUDIO_FAILED"}


def _too_long(body: Mapping[str, Any], name: str, limit: int) -> list[str]:
    value = body.get(name)
    return [f"{name} is longer than {limit} characters"] if isinstance(value, str) and len(value) > limit else []


class Suno:
    name = "suno"
    actions: tuple[Action, ...] = (Action("suno.generate", "generate", "generate"),)
    status_operation = "suno.recordInfo"
    status_path = "generate/record-info"

    def validate(self, action: str, body: Mapping[str, Any]) -> list[str]:
        problems = problems_of(body, required=("model", "callBackUrl"), enums={"model": _MODELS})
        custom, instrumental = body.get("customMode"), body.get("instrumental")
        if not isinstance(custom, bool) or not isinstance(instrumental, bool):
            return [*problems, "customMode and instrumental are required booleans"]
        old = body.get("model") in _OLD
        if not custom:
            problems += problems_of(body, required=("prompt",), enums={}) + _too_long(body, "prompt", 500)
            return problems
        problems += problems_of(body, required=("style", "title"), enums={})
        problems += _too_long(body, "title", 80) + _too_long(body, "style", 200 if old else 1000)
        if not instrumental:
            problems += problems_of(body, required=("prompt",), enums={})
            problems += _too_long(body, "prompt", 3000 if old else 5000)
        return problems

    def cost(self, action: str, body: Mapping[str, Any]) -> Decimal:
        return Decimal(12)

    def kind(self, action: str, body: Mapping[str, Any]) -> str:
        return "audio"

    def outputs(self, action: str, body: Mapping[str, Any]) -> int:
        return 2

    def _tracks(self, task: TaskView, camel: bool) -> list[dict[str, Any]]:
        tracks = []
        for n, url in enumerate(task.urls):
            fields = {
                "id": f"{task.task_id}-{n}",
                "audio_url": url,
                "stream_audio_url": url,
                "image_url": None,
                "prompt": task.body.get("prompt", ""),
                "model_name": "chirp-v5",
                "title": task.body.get("title", "Untitled"),
                "tags": task.body.get("style", ""),
                "createTime": "2026-11-29 00:00:00",
                "duration": 3.0,
            }
            if camel:
                fields = {
                    "".join(w if i == 0 else w.title() for i, w in enumerate(k.split("_"))): v
                    for k, v in fields.items()
                }
            tracks.append(fields)
        return tracks

    def status(self, task: TaskView) -> dict[str, Any]:
        status = {"waiting": "PENDING", "queuing": "PENDING", "generating": "TEXT_SUCCESS", "success": "SUCCESS"}.get(
            task.state, _FAILED[task.content_failure]
        )
        failed = task.state == "fail"
        return {
            "taskId": task.task_id,
            "parentMusicId": "",
            "param": json.dumps(dict(task.body)),
            "response": {"taskId": task.task_id, "sunoData": self._tracks(task, camel=True)},
            "status": status,
            "type": "GENERATE",
            "errorCode": (400 if task.content_failure else 501) if failed else None,
            "errorMessage": task.fail_msg if failed else None,
        }

    def callbacks(self, task: TaskView) -> list[dict[str, Any]]:
        if task.state == "fail":
            code = 400 if task.content_failure else 501
            return [
                {
                    "code": code,
                    "msg": task.fail_msg,
                    "data": {"callbackType": "error", "task_id": task.task_id, "data": None},
                }
            ]
        tracks = self._tracks(task, camel=False)
        return [
            {
                "code": 200,
                "msg": "Text generation completed.",
                "data": {"callbackType": "text", "task_id": task.task_id, "data": []},
            },
            {
                "code": 200,
                "msg": "First track completed.",
                "data": {"callbackType": "first", "task_id": task.task_id, "data": tracks[:1]},
            },
            {
                "code": 200,
                "msg": "All generated successfully.",
                "data": {"callbackType": "complete", "task_id": task.task_id, "data": tracks},
            },
        ]

    def query(self, action: str, params: Mapping[str, str], lookup: Lookup, now_ms: int) -> dict[str, Any]:
        raise Refusal(404, "no such endpoint")
