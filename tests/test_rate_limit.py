"""429 TOO_MANY_REQUESTS: raised at once by default, or paused on with rate_limit="slow_down"."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import pytest
from aioresponses import aioresponses
from conftest import (
    JOB_ID,
    MODULE,
    RECORD_ID,
    TOKEN,
    ClientFactory,
    FakeClock,
    error_body,
    jobs_body,
    merge_url,
    request_count,
)

from zoho_merge_async import (
    ConcurrencyLimiter,
    MergeClient,
    MergeJob,
    MergeStatus,
    MergeTimeoutError,
    RateLimitError,
    RetryPolicy,
    wait_for_merge,
)


def add_429(mocked: aioresponses, retry_after: str | None = None, count: int = 1) -> None:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    for _ in range(count):
        mocked.get(merge_url(JOB_ID), status=429, payload=error_body("TOO_MANY_REQUESTS"),
                   headers=headers)


def add_status(mocked: aioresponses, status: str) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, status)))


# Default: raise at once


async def test_wait_raises_429_at_once(mocked: aioresponses, make_client: ClientFactory,
                                       clock: FakeClock) -> None:
    add_status(mocked, "RUNNING")
    add_429(mocked, retry_after="3")
    add_status(mocked, "COMPLETED")
    client = make_client()

    with pytest.raises(RateLimitError) as caught:
        await wait_for_merge(client, MODULE, RECORD_ID, JOB_ID)

    assert caught.value.retry_after == 3.0
    assert request_count(mocked) == 2
    assert clock.sleeps == [2.0]
    assert client.stats.rate_limited == 1
    assert client.stats.retries == 0


def test_invalid_rate_limit_mode() -> None:
    with pytest.raises(ValueError, match="invalid rate_limit 'wait'"):
        MergeClient(TOKEN, rate_limit="wait")  # type: ignore[arg-type]


# slow_down: pause and continue


async def test_slow_down_honours_seconds(mocked: aioresponses, make_client: ClientFactory,
                                         clock: FakeClock) -> None:
    add_status(mocked, "RUNNING")
    add_429(mocked, retry_after="7")
    add_status(mocked, "COMPLETED")
    client = make_client(rate_limit="slow_down")

    job = await wait_for_merge(client, MODULE, RECORD_ID, JOB_ID)

    assert job == MergeJob(JOB_ID, MergeStatus.COMPLETED)
    assert clock.sleeps == [2.0, 7.0]
    assert client.stats.rate_limited == 1
    assert client.stats.retries == 0
    assert client.stats.requests_sent == 3


async def test_slow_down_honours_http_date(mocked: aioresponses, make_client: ClientFactory,
                                           clock: FakeClock) -> None:
    add_429(mocked, retry_after=email.utils.formatdate(time.time() + 5, usegmt=True))
    add_status(mocked, "COMPLETED")

    await wait_for_merge(make_client(rate_limit="slow_down"), MODULE, RECORD_ID, JOB_ID)

    # An HTTP date has whole seconds, so the pause is between 4 and 5 s.
    assert len(clock.sleeps) == 1
    assert 3.9 < clock.sleeps[0] <= 5.0


async def test_slow_down_backoff_without_header(mocked: aioresponses,
                                                make_client: ClientFactory,
                                                clock: FakeClock) -> None:
    add_429(mocked, count=3)
    add_status(mocked, "COMPLETED")

    await wait_for_merge(make_client(rate_limit="slow_down"), MODULE, RECORD_ID, JOB_ID)

    # RetryPolicy delays with r = 0: 1, 2 and 4 s.
    assert clock.sleeps == [1.0, 2.0, 4.0]


async def test_slow_down_stops_before_deadline(mocked: aioresponses,
                                               make_client: ClientFactory,
                                               clock: FakeClock) -> None:
    add_status(mocked, "RUNNING")
    add_429(mocked, retry_after="30")
    add_status(mocked, "COMPLETED")
    started = clock.now

    with pytest.raises(MergeTimeoutError) as caught:
        await wait_for_merge(make_client(rate_limit="slow_down"), MODULE, RECORD_ID, JOB_ID,
                             timeout=10.0)

    assert isinstance(caught.value.__cause__, RateLimitError)
    assert caught.value.last_status is MergeStatus.RUNNING
    assert caught.value.polls == 1
    assert clock.sleeps == [2.0]
    assert clock.now <= started + 10.0
    assert request_count(mocked) == 2


async def test_slow_down_pause_to_deadline(mocked: aioresponses, make_client: ClientFactory,
                                           clock: FakeClock) -> None:
    add_429(mocked, retry_after="4", count=5)
    add_status(mocked, "COMPLETED")
    started = clock.now

    with pytest.raises(MergeTimeoutError):
        await wait_for_merge(make_client(rate_limit="slow_down"), MODULE, RECORD_ID, JOB_ID,
                             timeout=10.0)

    # Pauses end at 4 and 8 s; the next one would end at 12 s, past the deadline.
    assert clock.sleeps == [4.0, 4.0]
    assert clock.now <= started + 10.0
    assert request_count(mocked) == 3


async def test_slow_down_keeps_retry_budget(mocked: aioresponses, make_client: ClientFactory,
                                            clock: FakeClock) -> None:
    mocked.get(merge_url(JOB_ID), status=500, payload=error_body("INTERNAL_ERROR"))
    add_429(mocked, retry_after="1", count=3)
    add_status(mocked, "COMPLETED")
    client = make_client(rate_limit="slow_down", retry=RetryPolicy(jitter=0.0, max_attempts=2))

    job = await wait_for_merge(client, MODULE, RECORD_ID, JOB_ID)

    assert job.status is MergeStatus.COMPLETED
    assert client.stats.retries == 1
    assert client.stats.rate_limited == 3
    assert clock.sleeps == [1.0, 1.0, 1.0, 1.0]


async def test_slow_down_lowers_limit(mocked: aioresponses, make_client: ClientFactory) -> None:
    add_429(mocked, retry_after="1", count=2)
    add_status(mocked, "COMPLETED")
    client = make_client(rate_limit="slow_down", max_concurrency=20)

    await wait_for_merge(client, MODULE, RECORD_ID, JOB_ID)

    assert isinstance(client.limiter, ConcurrencyLimiter)
    assert client.limiter.rate_limited == 2
    assert client.limiter.limit == 5


async def test_status_call_still_raises(mocked: aioresponses,
                                        make_client: ClientFactory) -> None:
    add_429(mocked, retry_after="2")
    add_status(mocked, "RUNNING")

    with pytest.raises(RateLimitError) as caught:
        await make_client(rate_limit="slow_down").get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert caught.value.retry_after == 2.0
    assert request_count(mocked) == 1


@pytest.mark.parametrize("header", ["0", "soon"])
async def test_unusable_header_uses_backoff(mocked: aioresponses, make_client: ClientFactory,
                                            clock: FakeClock, header: Any) -> None:
    add_429(mocked, retry_after=header)
    add_status(mocked, "COMPLETED")

    await wait_for_merge(make_client(rate_limit="slow_down"), MODULE, RECORD_ID, JOB_ID)

    assert clock.sleeps == [1.0]
