"""Limits: the rate verdict, the operator's limit options and the wait shown to users (issue 17, item 1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.validation import (
    InputError,
    parse_free_daily,
    parse_max_open_jobs,
    parse_rate_limit,
    parse_timezone,
)
from tenant_runtime.limits.rate import RateVerdict, verdict
from tenant_runtime.limits.shop_limits import FREE_DAILY_MAX, MAX_OPEN_JOBS_MAX, RATE_LIMIT_MAX
from tenant_runtime.telegram.limit_texts import duration


@given(limit=st.integers(1, RATE_LIMIT_MAX), updates=st.integers(0, 3000))
def test_a_window_allows_the_limit_then_exactly_one_notice(limit: int, updates: int) -> None:
    verdicts = [verdict(hits, limit) for hits in range(1, updates + 1)]
    assert verdicts.count(RateVerdict.ALLOW) == min(updates, limit)
    assert verdicts.count(RateVerdict.NOTICE) == (1 if updates > limit else 0)
    assert verdicts.count(RateVerdict.SILENT) == max(0, updates - limit - 1)
    # Never allowed again once over, within the window.
    first_refused = next((i for i, v in enumerate(verdicts) if v is not RateVerdict.ALLOW), len(verdicts))
    assert all(v is not RateVerdict.ALLOW for v in verdicts[first_refused:])


@given(st.integers(0, FREE_DAILY_MAX))
def test_free_daily_accepts_zero_to_the_maximum(value: int) -> None:
    assert parse_free_daily(str(value)) == value


@given(st.integers(1, MAX_OPEN_JOBS_MAX))
def test_max_open_jobs_accepts_one_to_the_maximum(value: int) -> None:
    assert parse_max_open_jobs(f" {value} ") == value


@given(st.integers(1, RATE_LIMIT_MAX), st.sampled_from(["{}/min", "{}/MIN", "{} / min", "{}"]))
def test_rate_limit_reads_n_per_minute(value: int, form: str) -> None:
    assert parse_rate_limit(form.format(value)) == value


@pytest.mark.parametrize("value", ["-1", "1001", "abc", "", "5.5", "1e3", "５", "²", "0x10", "9" * 50])
def test_bad_free_daily_is_a_clear_error(value: str) -> None:
    with pytest.raises(InputError, match=r"--free-daily .* must be a whole number from 0 to 1000"):
        parse_free_daily(value)


@pytest.mark.parametrize("value", ["0", "-3", "101", "three", "", "2.0"])
def test_bad_max_open_jobs_is_a_clear_error(value: str) -> None:
    with pytest.raises(InputError, match=r"--max-open-jobs .* must be a whole number from 1 to 100"):
        parse_max_open_jobs(value)


@pytest.mark.parametrize("value", ["0/min", "-5/min", "30/hour", "30/sec", "abc", "", "/min", "1001/min", "30/min/min"])
def test_bad_rate_limit_is_a_clear_error(value: str) -> None:
    with pytest.raises(InputError, match=r"--rate-limit .* must look like 30/min"):
        parse_rate_limit(value)


@given(st.text(max_size=80))
def test_the_rate_limit_parser_never_raises_anything_but_input_error(value: str) -> None:
    try:
        number = parse_rate_limit(value)
    except InputError:
        return
    assert 1 <= number <= RATE_LIMIT_MAX


@pytest.mark.parametrize("value", ["Europe/Moscow", "UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+3"])
def test_timezone_names_pass_the_shape_check(value: str) -> None:
    assert parse_timezone(value) == value


@pytest.mark.parametrize(
    "value", ["", "Europe/Moscow; DROP TABLE", "../etc/passwd", "/etc/localtime", "Москва", "a" * 65]
)
def test_bad_timezone_is_a_clear_error(value: str) -> None:
    with pytest.raises(InputError, match=r"--timezone .* is not a time zone name"):
        parse_timezone(value)


@pytest.mark.parametrize(
    ("seconds", "ru", "en"),
    [(1, "1 мин", "1 min"), (59.5, "1 мин", "1 min"), (61, "2 мин", "2 min"), (3600, "1 ч 00 мин", "1 h 00 min")],
)
def test_waits_are_whole_minutes_rounded_up(seconds: float, ru: str, en: str) -> None:
    assert duration("ru", seconds) == ru and duration("en", seconds) == en


@given(st.floats(0, 86400))
def test_a_wait_is_never_shown_shorter_than_it_is(seconds: float) -> None:
    shown = duration("en", seconds)
    hours, minutes = (0, shown) if " h " not in shown else shown.split(" h ")
    total = int(hours) * 60 + int(str(minutes).removesuffix(" min"))
    assert total * 60 >= seconds
