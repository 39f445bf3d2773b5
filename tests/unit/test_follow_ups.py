"""Follow-ups: which finished jobs they act on and with what input, and Veo's 1080p version read
from the fake KIE over real HTTP (not ready, then the file)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sandbox.kie import FakeKie, FakeKieConfig
from shared.registry import PriceMode, load_registry
from tenant_runtime.generation.follow_ups import follow_up_params, offered
from tenant_runtime.generation.job import Job, JobStatus
from tenant_runtime.kie.client import KieClient, KieClientConfig
from tenant_runtime.kie.families import TaskRef, TaskRequest
from tenant_runtime.kie.families.veo import GENERATE, HD_1080P, Veo
from tenant_runtime.telegram.callback_data import FollowCb
from tenant_runtime.telegram.keyboards import TextFn, result

REGISTRY = load_registry()
HD = REGISTRY.get(HD_1080P)
NOW = datetime(2026, 11, 29, tzinfo=UTC)


def _job(**changes: object) -> Job:
    job = Job(
        id=1, tenant_id=1, user_id=1, chat_id=1, model=GENERATE, params={}, kie_input={}, price=4800, hold_id=1,
        correlation_id="c", language="ru", status=JobStatus.DELIVERED, task_id="veo_task_1",
        kie_state="success", result_urls=["https://f.test/v.mp4"], result_text=None, fail_reason=None,
        progress_message_id=None, created_at=NOW, submitted_at=NOW, finished_at=NOW, deadline_at=NOW,
    )  # fmt: skip
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


def test_a_follow_up_acts_only_on_a_finished_job_of_its_parent_model_with_results() -> None:
    assert HD is not None
    assert offered(HD, _job()) and follow_up_params(HD, _job(), 0) == {"parent_task": "veo_task_1"}
    for job in (
        _job(model="google/veo-3"),
        _job(status=JobStatus.SUBMITTED),
        _job(status=JobStatus.FAILED),
        _job(task_id=None),
        _job(result_urls=[]),
    ):
        assert not offered(HD, job) and follow_up_params(HD, job, 0) is None, job


def test_a_per_result_follow_up_names_one_of_the_results() -> None:
    assert HD is not None and HD.follow_up is not None
    per_result = HD.model_copy(update={"follow_up": HD.follow_up.model_copy(update={"per_output": True})})
    four = _job(result_urls=[f"https://f.test/{n}.png" for n in range(4)])
    assert follow_up_params(per_result, four, 4) == {"parent_task": "veo_task_1", "index": "4"}
    assert follow_up_params(per_result, four, 0) is None and follow_up_params(per_result, four, 5) is None


@pytest.fixture
async def fake() -> AsyncIterator[FakeKie]:
    kie = FakeKie(FakeKieConfig(durations=(0.2, 0.2)))
    kie.register_key("k1", 1000)
    await kie.start()
    yield kie
    await kie.stop()


async def test_the_1080p_version_is_not_ready_and_then_is_the_file(fake: FakeKie) -> None:
    veo = Veo()
    async with KieClient(fake.base_url, KieClientConfig(read_timeout_s=5)) as kie:
        values = {"prompt": "p", "model": "veo3_fast", "generation_type": "TEXT_2_VIDEO", "aspect_ratio": "16:9"}
        parent = await veo.create(kie, "k1", TaskRequest(GENERATE, values))
        hd_task = await veo.create(kie, "k1", TaskRequest(HD_1080P, {"parent_task": parent}))
        assert hd_task.startswith("1080p-") and fake.calls("veo.1080p") == 0  # asking starts nothing at KIE
        ref = TaskRef(hd_task, HD_1080P, {"parent_task": parent})
        states = []
        deadline = asyncio.get_running_loop().time() + 10
        while not states or states[-1].state != "success":
            assert asyncio.get_running_loop().time() < deadline, states
            states.append(await veo.status(kie, "k1", ref))
            await asyncio.sleep(0.1)
    assert states[0].state == "generating" and states[0].fail_code == "422"
    assert states[-1].outputs == (f"{fake.base_url}/files/{parent}-0.mp4?resolution=1080p",)
    assert fake.balance("k1") == 1000 - 60  # the 1080p version costs nothing extra


def test_per_result_follow_ups_are_a_row_of_numbered_buttons_under_an_album() -> None:
    priced = [
        spec.model_copy(update={"prices": (PriceMode(credits=Decimal(2)),)})
        for spec in (REGISTRY.get("midjourney/upscale"), REGISTRY.get("midjourney/vary"))
        if spec is not None
    ]
    markup = result(123456789, TextFn("ru"), follow_ups=[(spec, 4) for spec in priced])
    rows = [[(b.text, b.callback_data) for b in row] for row in markup.inline_keyboard]
    assert [[text for text, _ in row] for row in rows] == [
        ["🔍 1", "🔍 2", "🔍 3", "🔍 4"],
        ["🔀 1", "🔀 2", "🔀 3", "🔀 4"],
        ["🔁 Повторить", "✏️ Изменить параметры"],
        ["🏠 Главное меню"],
    ]
    data = rows[0][2][1]
    assert data is not None and len(data.encode()) <= 64
    assert FollowCb.unpack(data) == FollowCb(job=123456789, model="midjourney/upscale", index=3)
