"""Each KIE endpoint family against its docs, as the fake KIE speaks them: the requests we build are
ones the endpoint accepts, and every status answer and callback it can send is read to the same
outcome; anything else is refused with the family's own error, never a crash."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.kie_families import FAMILIES as FAKES
from sandbox.kie_families import TaskView
from shared.registry import ModelSpec, load_registry, to_kie_input, validate_input
from tenant_runtime.billing.pricing import user_price
from tenant_runtime.billing.quotes import quote
from tenant_runtime.kie.errors import KieCallbackError, KieServerError
from tenant_runtime.kie.families import FAMILIES, family_of
from tests.unit.test_registry import _valid_input

REGISTRY = load_registry()
DEDICATED = [spec for spec in REGISTRY.sellable() if spec.family not in (None, "jobs")]
CATALOG = [spec for spec in DEDICATED if spec.follow_up is None]  # follow-ups are tested on their own
CALLBACK = "https://shop.test/kie/callback/shop/1.abc"
RATE = Decimal(40)
STATES = ("waiting", "queuing", "generating", "success", "fail")
URL = st.builds(lambda n: f"https://files.test/r/{n}.bin", st.integers(0, 10**6))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


def _action(spec: ModelSpec) -> str:
    fake = FAKES[str(spec.family)]
    path = FAMILIES[str(spec.family)].operations[spec.id]
    return next(a.action for a in fake.actions if a.path == path)


def test_every_sold_model_is_served_by_its_family() -> None:
    for spec in REGISTRY.sellable():
        assert family_of(spec).serves(spec.id), spec.id
    assert {str(spec.family) for spec in DEDICATED} <= set(FAKES), "the fake speaks every family sold"


@pytest.mark.parametrize("spec", DEDICATED, ids=lambda s: s.id)
def test_each_create_path_is_one_the_fake_routes(spec: ModelSpec) -> None:
    family = family_of(spec)
    fake = FAKES[family.name]
    assert family.operations[spec.id] in {a.path for a in fake.actions}
    assert family.status_path == fake.status_path


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_requests_built_from_valid_input_are_accepted_by_the_endpoint(data: st.DataObject) -> None:
    spec = data.draw(st.sampled_from(DEDICATED), label="model")
    params = data.draw(_valid_input(spec), label="params")
    if validate_input(spec, params):
        return  # the wizard refuses it before anything is sent (tested in test_registry)
    family = family_of(spec)
    body = family.request(spec.id, to_kie_input(spec, params), CALLBACK)
    assert FAKES[family.name].validate(_action(spec), body) == []
    if spec.follow_up is None:
        assert body["callBackUrl"] == CALLBACK
    json.dumps(body)  # JSON all the way down


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), markup=st.decimals("1.00", "5.00", places=2))
def test_the_user_pays_the_marked_up_price_of_exactly_what_kie_charges(data: st.DataObject, markup: Decimal) -> None:
    """What the confirm screen shows and the hold reserves is ceil(KIE's credits for this very
    request × markup × rate): the variant, duration and quality that select the price are the ones sent."""
    spec = data.draw(st.sampled_from([s for s in CATALOG if not s.free]), label="model")
    params = data.draw(_valid_input(spec), label="params")
    if validate_input(spec, params):
        return
    family = family_of(spec)
    body = family.request(spec.id, to_kie_input(spec, params), CALLBACK)
    charged = FAKES[family.name].cost(_action(spec), body)
    assert spec.price_credits(params) == charged
    assert quote(spec, params, markup, RATE) == user_price(charged, markup, RATE)


def _view(data: st.DataObject, spec: ModelSpec) -> TaskView:
    state = data.draw(st.sampled_from(STATES), label="state")
    fake = FAKES[str(spec.family)]
    outputs = fake.outputs(_action(spec), {})
    urls = tuple(data.draw(st.lists(URL, min_size=outputs, max_size=outputs, unique=True), label="urls"))
    return TaskView(
        task_id=data.draw(st.text("0123456789abcdef", min_size=8, max_size=32), label="task id"),
        action=_action(spec),
        body={"prompt": "p"},
        state=state,
        urls=urls if state == "success" else (),
        fail_code="500",
        fail_msg=data.draw(st.sampled_from(["content policy violation", "internal error"]), label="failure"),
        content_failure=False,
        created_ms=1_700_000_000_000,
        completed_ms=1_700_000_060_000 if state in ("success", "fail") else None,
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_status_answers_are_read_to_the_task_state_and_every_result(data: st.DataObject) -> None:
    spec = data.draw(st.sampled_from(CATALOG), label="model")
    view = _view(data, spec)
    report = family_of(spec).parse_status(FAKES[str(spec.family)].status(view))
    assert report.task_id == view.task_id
    if view.state in ("success", "fail"):
        assert report.state == view.state
    else:
        assert not report.is_final
    assert report.outputs == view.urls


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_callbacks_end_the_task_exactly_as_the_status_answer_does(data: st.DataObject) -> None:
    spec = data.draw(st.sampled_from(CATALOG), label="model")
    view = _view(data, spec)
    if view.state not in ("success", "fail"):
        return
    family = family_of(spec)
    *progress, last = FAKES[str(spec.family)].callbacks(view)
    assert all(not family.parse_callback(body).is_final for body in progress)
    report = family.parse_callback(last)
    assert (report.task_id, report.state, report.outputs) == (view.task_id, view.state, view.urls)


@settings(max_examples=500, deadline=None)
@given(family=st.sampled_from(sorted(FAMILIES)), raw=JSON)
def test_hostile_status_answers_and_callbacks_raise_only_the_family_errors(family: str, raw: Any) -> None:
    adapter = FAMILIES[family]
    with contextlib.suppress(KieServerError):
        adapter.parse_status(raw)
    if isinstance(raw, dict):
        with contextlib.suppress(KieCallbackError):
            adapter.parse_callback(raw)


@pytest.mark.parametrize("family", sorted(set(FAMILIES) - {"jobs"}))
def test_a_success_without_results_is_not_a_success(family: str) -> None:
    """Charging for nothing is never right: a "success" that names no result is a failure."""
    adapter = FAMILIES[family]
    spec = next(s for s in CATALOG if s.family == family)
    fake = FAKES[family]
    view = TaskView("t1", _action(spec), {}, "success", (), "", "", False, 1, 2)
    assert adapter.parse_status(fake.status(view)).state == "fail"
    assert adapter.parse_callback(fake.callbacks(view)[-1]).state == "fail"
