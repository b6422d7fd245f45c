"""`RetrySchedule` counts each repeat once, however often tenacity calls its `wait`."""

from __future__ import annotations

import pytest
from tenacity import AsyncRetrying, RetryCallState

from zoho_merge_async import InternalError, RetryPolicy
from zoho_merge_async._retry import RetrySchedule

POLICY = RetryPolicy(initial_delay=1.0, multiplier=2.0, max_delay=10.0, jitter=0.0,
                     max_attempts=4)


async def run_schedule(wait_calls: int) -> tuple[int, list[float], int]:
    """Fail with INTERNAL_ERROR every time; return attempts, pauses and counted retries."""
    retries: list[None] = []
    schedule = RetrySchedule(POLICY, slow_down=False, deadline=None, clock=lambda: 0.0,
                             random=lambda: 0.0, count_retry=lambda: retries.append(None),
                             request_label="Leads record 1 job 2")
    pauses: list[float] = []
    attempts = 0

    def wait(state: RetryCallState) -> float:
        pause = 0.0
        for _ in range(wait_calls):
            pause = schedule.wait(state)
        return pause

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    async def attempt() -> None:
        nonlocal attempts
        attempts += 1
        raise InternalError("INTERNAL_ERROR", 500)

    retrying = AsyncRetrying(retry=schedule.retry, stop=schedule.stop, wait=wait, sleep=sleep,
                             before_sleep=schedule.before_sleep, reraise=True)
    with pytest.raises(InternalError):
        await retrying(attempt)
    return attempts, pauses, len(retries)


@pytest.mark.parametrize("wait_calls", [1, 3])
async def test_repeats_counted_once(wait_calls: int) -> None:
    attempts, pauses, retries = await run_schedule(wait_calls)

    assert attempts == 4
    assert pauses == [1.0, 2.0, 4.0]
    assert retries == 3
