"""MergeStatus parsing and the validation and delay formula of PollPolicy and RetryPolicy."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zoho_merge_async import MergeStatus, PollPolicy, RetryPolicy


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("SCHEDULED", MergeStatus.SCHEDULED),
        ("scheduled", MergeStatus.SCHEDULED),
        ("RUNNING", MergeStatus.RUNNING),
        ("running", MergeStatus.RUNNING),
        ("Running", MergeStatus.RUNNING),
        ("COMPLETED", MergeStatus.COMPLETED),
        ("completed", MergeStatus.COMPLETED),
        ("FAILURE", MergeStatus.FAILURE),
        ("failure", MergeStatus.FAILURE),
        ("FAILED", MergeStatus.FAILURE),
        ("failed", MergeStatus.FAILURE),
    ],
)
def test_parse_known_spellings(raw: str, expected: MergeStatus) -> None:
    assert MergeStatus.parse(raw) is expected


@pytest.mark.parametrize(
    "raw",
    [
        "PAUSED",
        "",
        " RUNNING",
        "RUNNING\n",
        "error",
        "success",
        # Non-ASCII letters whose upper case is ASCII: dotless i and long s.
        "runn\u0131ng",
        "\u017fcheduled",
    ],
)
def test_parse_unknown_text_raises(raw: str) -> None:
    with pytest.raises(ValueError, match="unknown merge status"):
        MergeStatus.parse(raw)


@pytest.mark.parametrize("raw", [None, 1, b"RUNNING", ["RUNNING"], MergeStatus.RUNNING])
def test_parse_non_str_raises(raw: object) -> None:
    with pytest.raises(ValueError, match="unknown merge status"):
        MergeStatus.parse(raw)


def test_parse_error_lists_spellings() -> None:
    with pytest.raises(ValueError, match="FAILED, FAILURE, RUNNING") as caught:
        MergeStatus.parse("PAUSED")

    assert "'PAUSED'" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "terminal"),
    [
        (MergeStatus.SCHEDULED, False),
        (MergeStatus.RUNNING, False),
        (MergeStatus.COMPLETED, True),
        (MergeStatus.FAILURE, True),
    ],
)
def test_is_terminal(status: MergeStatus, terminal: bool) -> None:
    assert status.is_terminal is terminal


BAD_POLL_FIELDS = [
    ("initial_delay", 0.0),
    ("initial_delay", -1.0),
    ("initial_delay", math.nan),
    ("initial_delay", math.inf),
    ("multiplier", 0.5),
    ("multiplier", math.nan),
    ("multiplier", math.inf),
    ("max_delay", 1.0),
    ("max_delay", math.nan),
    ("max_delay", math.inf),
    ("jitter", -0.1),
    ("jitter", 1.0),
    ("jitter", math.nan),
    ("timeout", 0.0),
    ("timeout", -1.0),
    ("timeout", math.nan),
    ("timeout", math.inf),
]


@pytest.mark.parametrize(("field", "value"), BAD_POLL_FIELDS)
def test_poll_policy_rejects_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=re.escape(f"PollPolicy.{field} ")):
        PollPolicy(**{field: value})


BAD_RETRY_FIELDS: list[tuple[str, object]] = [
    ("initial_delay", 0.0),
    ("initial_delay", math.inf),
    ("multiplier", 0.99),
    ("max_delay", 0.5),
    ("max_delay", math.inf),
    ("jitter", 1.5),
    ("max_attempts", 0),
    ("max_attempts", -1),
    ("max_attempts", True),
    ("max_attempts", 1.5),
    ("max_attempts", "3"),
]


@pytest.mark.parametrize(("field", "value"), BAD_RETRY_FIELDS)
def test_retry_policy_rejects_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=re.escape(f"RetryPolicy.{field} ")):
        RetryPolicy(**{field: value})


def test_policy_error_shows_value() -> None:
    with pytest.raises(ValueError, match="got -3"):
        PollPolicy(timeout=-3)


def test_policy_boundaries_accepted() -> None:
    policy = PollPolicy(initial_delay=5.0, multiplier=1.0, max_delay=5.0, jitter=0.0,
                        timeout=0.001)

    assert policy.delay(10, 0.99) == 5.0


def test_retry_single_attempt_accepted() -> None:
    assert RetryPolicy(max_attempts=1).max_attempts == 1


def test_poll_policy_frozen() -> None:
    policy = PollPolicy()

    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.timeout = 1.0  # type: ignore[misc]


def test_retry_policy_frozen() -> None:
    policy = RetryPolicy()

    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_attempts = 9  # type: ignore[misc]


def test_replace_revalidates() -> None:
    with pytest.raises(ValueError, match=re.escape("PollPolicy.jitter ")):
        dataclasses.replace(PollPolicy(), jitter=2.0)


def test_poll_delays_without_jitter() -> None:
    policy = PollPolicy()

    delays = [policy.delay(n, 0.0) for n in range(9)]

    assert delays == [2.0, 3.0, 4.5, 6.75, 10.125, 15.1875, 22.78125, 30.0, 30.0]


def test_poll_delays_half_jitter() -> None:
    policy = PollPolicy()

    delays = [policy.delay(n, 0.5) for n in range(8)]

    # jitter 0.2 with r = 0.5 scales every delay by 0.9, the cap included.
    expected = [1.8, 2.7, 4.05, 6.075, 9.1125, 13.66875, 20.503125, 27.0]
    assert delays == pytest.approx(expected, rel=1e-12)


def test_retry_delays_without_jitter() -> None:
    policy = RetryPolicy()

    delays = [policy.delay(n, 0.0) for n in range(1, 7)]

    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_retry_delays_half_jitter() -> None:
    policy = RetryPolicy()

    delays = [policy.delay(n, 0.5) for n in range(1, 6)]

    assert delays == pytest.approx([0.9, 1.8, 3.6, 7.2, 9.0], rel=1e-12)


def test_delay_capped_at_max_delay() -> None:
    policy = PollPolicy(initial_delay=1.0, multiplier=3.0, max_delay=7.0, jitter=0.0)

    assert policy.delay(2, 0.0) == 7.0


@pytest.mark.parametrize("poll_index", [1_000, 1_001, 10**6, 10**18])
def test_huge_poll_index_no_overflow(poll_index: int) -> None:
    policy = PollPolicy(multiplier=10.0)

    assert policy.delay(poll_index, 0.0) == 30.0


def test_huge_retry_number_no_overflow() -> None:
    policy = RetryPolicy(multiplier=1e10, max_delay=60.0)

    assert policy.delay(10**9, 0.0) == 60.0


@given(
    initial_delay=st.floats(min_value=1e-3, max_value=100.0),
    multiplier=st.floats(min_value=1.0, max_value=1e6),
    extra=st.floats(min_value=0.0, max_value=1e4),
    jitter=st.floats(min_value=0.0, max_value=0.99),
    poll_index=st.integers(min_value=0, max_value=10**6),
    random_value=st.floats(min_value=0.0, max_value=0.999999),
)
def test_delay_within_bounds(
    initial_delay: float,
    multiplier: float,
    extra: float,
    jitter: float,
    poll_index: int,
    random_value: float,
) -> None:
    max_delay = initial_delay + extra
    policy = PollPolicy(initial_delay=initial_delay, multiplier=multiplier,
                        max_delay=max_delay, jitter=jitter)

    delay = policy.delay(poll_index, random_value)

    assert delay <= max_delay
    assert delay >= initial_delay * (1 - jitter) * (1 - 1e-12)
