"""wait_for_merge on a fake clock: backoff schedule, deadline, job selection, cancellation."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from aioresponses import aioresponses
from conftest import (
    JOB_ID,
    MODULE,
    OTHER_JOB_ID,
    RECORD_ID,
    ClientFactory,
    FakeClock,
    error_body,
    jobs_body,
    merge_url,
    request_count,
)
from yarl import URL

from zoho_merge_async import (
    InternalError,
    MergeJob,
    MergeJobNotFoundError,
    MergeStatus,
    MergeTimeoutError,
    MultipleMergeJobsError,
    PollPolicy,
    RetryPolicy,
    TransportError,
    UnexpectedResponseError,
    wait_for_merge,
)

# The client fixture's default: 2 s, times 1.5 per poll, capped at 30 s, jitter 0.2.
POLICY = PollPolicy(initial_delay=2.0, multiplier=1.5, max_delay=30.0, jitter=0.2,
                    timeout=600.0)


def add_statuses(mocked: aioresponses, *statuses: str, job_id: str = JOB_ID) -> None:
    """Register one response per status, in order, and repeat the last one."""
    for status in statuses[:-1]:
        mocked.get(merge_url(job_id), payload=jobs_body((job_id, status)))
    mocked.get(merge_url(job_id), payload=jobs_body((job_id, statuses[-1])), repeat=True)


# Backoff schedule


async def test_delays_follow_formula(mocked: aioresponses, make_client: ClientFactory,
                                     clock: FakeClock) -> None:
    add_statuses(mocked, "SCHEDULED", "RUNNING", "RUNNING", "RUNNING", "COMPLETED")

    job = await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID)

    assert job == MergeJob(JOB_ID, MergeStatus.COMPLETED)
    assert clock.sleeps == [2.0, 3.0, 4.5, 6.75]
    assert request_count(mocked) == 5


async def test_delays_match_policy_delay(mocked: aioresponses, make_client: ClientFactory,
                                         clock: FakeClock) -> None:
    add_statuses(mocked, *["RUNNING"] * 9, "COMPLETED")

    await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID)

    assert clock.sleeps == [POLICY.delay(n, 0.0) for n in range(9)]


async def test_jittered_delays(mocked: aioresponses, make_client: ClientFactory,
                               clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING", "RUNNING", "RUNNING", "RUNNING", "COMPLETED")

    await wait_for_merge(make_client(random=lambda: 0.5), MODULE, RECORD_ID, JOB_ID)

    assert clock.sleeps == pytest.approx([1.8, 2.7, 4.05, 6.075], rel=1e-12)


async def test_delays_capped(mocked: aioresponses, make_client: ClientFactory,
                             clock: FakeClock) -> None:
    add_statuses(mocked, *["RUNNING"] * 7, "COMPLETED")
    policy = PollPolicy(initial_delay=2.0, multiplier=2.0, max_delay=5.0, jitter=0.0)

    await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID, policy=policy)

    assert clock.sleeps == [2.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0]


async def test_client_poll_policy_default(mocked: aioresponses, make_client: ClientFactory,
                                          clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING", "RUNNING", "COMPLETED")
    policy = PollPolicy(initial_delay=0.5, multiplier=3.0, max_delay=10.0, jitter=0.0,
                        min_interval=0.5)

    await wait_for_merge(make_client(poll=policy), MODULE, RECORD_ID, JOB_ID)

    assert clock.sleeps == [0.5, 1.5]


async def test_terminal_first_poll_no_sleep(mocked: aioresponses, make_client: ClientFactory,
                                            clock: FakeClock) -> None:
    add_statuses(mocked, "COMPLETED")

    await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID)

    assert clock.sleeps == []
    assert request_count(mocked) == 1


# Deadline


async def test_deadline_raises_timeout(mocked: aioresponses, make_client: ClientFactory,
                                       clock: FakeClock) -> None:
    add_statuses(mocked, "SCHEDULED", "RUNNING")

    with pytest.raises(MergeTimeoutError) as caught:
        await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID, timeout=10.0)

    assert isinstance(caught.value, TimeoutError)
    assert caught.value.job_id == JOB_ID
    assert caught.value.last_status is MergeStatus.RUNNING
    assert caught.value.elapsed == 10.0
    assert caught.value.polls == 4


async def test_last_sleep_is_remaining(mocked: aioresponses, make_client: ClientFactory,
                                       clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING")
    started = clock.now

    with pytest.raises(MergeTimeoutError):
        await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID, timeout=10.0)

    # Polls at 0, 2, 5 and 9.5 s. The next delay (6.75 s) would pass the deadline,
    # so the wait sleeps the remaining 0.5 s and stops.
    assert clock.sleeps == [2.0, 3.0, 4.5, 0.5]
    assert clock.now == started + 10.0
    assert request_count(mocked) == 4


async def test_no_sleep_past_deadline(mocked: aioresponses, make_client: ClientFactory,
                                      clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING")
    started = clock.now

    with pytest.raises(MergeTimeoutError):
        await wait_for_merge(make_client(random=lambda: 0.7), MODULE, RECORD_ID, JOB_ID,
                             timeout=37.0)

    assert clock.now == pytest.approx(started + 37.0, abs=1e-9)
    assert clock.now <= started + 37.0


async def test_timeout_defaults_to_policy(mocked: aioresponses, make_client: ClientFactory,
                                          clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING")
    policy = PollPolicy(initial_delay=2.0, multiplier=1.5, jitter=0.0, timeout=7.0)

    with pytest.raises(MergeTimeoutError) as caught:
        await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID, policy=policy)

    assert clock.sleeps == [2.0, 3.0, 2.0]
    assert caught.value.elapsed == 7.0


async def test_timeout_argument_wins(mocked: aioresponses, make_client: ClientFactory,
                                     clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING")
    policy = PollPolicy(jitter=0.0, timeout=7.0)

    with pytest.raises(MergeTimeoutError):
        await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID, policy=policy,
                             timeout=3.0)

    assert clock.sleeps == [2.0, 1.0]


async def test_request_timeout_cut_to_deadline(mocked: aioresponses,
                                               make_client: ClientFactory) -> None:
    add_statuses(mocked, "RUNNING", "COMPLETED")

    await wait_for_merge(make_client(request_timeout=30.0), MODULE, RECORD_ID, JOB_ID,
                         timeout=5.0)

    calls = mocked.requests[("GET", URL(merge_url(JOB_ID)))]
    assert [call.kwargs["timeout"].total for call in calls] == [5.0, 3.0]


async def test_transport_error_at_deadline(mocked: aioresponses, make_client: ClientFactory,
                                           clock: FakeClock) -> None:
    deadline = clock.now + 10.0

    async def time_out(url: URL, **kwargs: Any) -> None:
        clock.now = deadline
        raise TimeoutError

    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))
    mocked.get(merge_url(JOB_ID), callback=time_out)

    with pytest.raises(MergeTimeoutError) as caught:
        await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID, timeout=10.0)

    assert isinstance(caught.value.__cause__, TransportError)
    assert caught.value.polls == 1
    assert caught.value.last_status is MergeStatus.RUNNING


async def test_transport_error_before_deadline(mocked: aioresponses,
                                               make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))
    mocked.get(merge_url(JOB_ID), timeout=True)

    with pytest.raises(TransportError):
        await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID, timeout=10.0)

    assert request_count(mocked) == 2


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, -math.inf, True, "10"])
async def test_invalid_timeout_rejected(mocked: aioresponses, make_client: ClientFactory,
                                        timeout: Any) -> None:
    with pytest.raises(ValueError, match="invalid timeout"):
        await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID, timeout=timeout)

    assert request_count(mocked) == 0


async def test_bad_arguments_send_nothing(mocked: aioresponses,
                                          make_client: ClientFactory) -> None:
    client = make_client()

    with pytest.raises(ValueError, match="invalid module"):
        await wait_for_merge(client, "Le/ads", RECORD_ID, JOB_ID)
    with pytest.raises(ValueError, match="invalid master_record_id"):
        await wait_for_merge(client, MODULE, "12a", JOB_ID)
    with pytest.raises(ValueError, match="invalid job_id"):
        await wait_for_merge(client, MODULE, RECORD_ID, "%2F")

    assert request_count(mocked) == 0


# Final and unknown states


async def test_failure_returned(mocked: aioresponses, make_client: ClientFactory) -> None:
    add_statuses(mocked, "RUNNING", "FAILURE")

    job = await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID)

    assert job == MergeJob(JOB_ID, MergeStatus.FAILURE)


async def test_lowercase_statuses(mocked: aioresponses, make_client: ClientFactory) -> None:
    add_statuses(mocked, "SCHEDULED", "running", "failed")

    job = await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID)

    assert job.status is MergeStatus.FAILURE
    assert request_count(mocked) == 3


async def test_unknown_status_stops_wait(mocked: aioresponses, make_client: ClientFactory,
                                         clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING", "PAUSED", "COMPLETED")

    with pytest.raises(UnexpectedResponseError, match="PAUSED"):
        await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID)

    assert request_count(mocked) == 2
    assert clock.sleeps == [2.0]


async def test_job_not_found_with_id(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), status=204)

    with pytest.raises(MergeJobNotFoundError) as caught:
        await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID)

    assert caught.value.job_id == JOB_ID


# Waiting without a job id


async def test_follows_single_listed_job(mocked: aioresponses, make_client: ClientFactory,
                                         clock: FakeClock) -> None:
    mocked.get(merge_url(), payload=jobs_body((JOB_ID, "SCHEDULED")))
    add_statuses(mocked, "RUNNING", "COMPLETED")

    job = await wait_for_merge(make_client(), MODULE, RECORD_ID)

    assert job == MergeJob(JOB_ID, MergeStatus.COMPLETED)
    assert len(mocked.requests[("GET", URL(merge_url()))]) == 1
    assert len(mocked.requests[("GET", URL(merge_url(JOB_ID)))]) == 2
    assert clock.sleeps == [2.0, 3.0]


async def test_listed_job_already_done(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(), payload=jobs_body((JOB_ID, "COMPLETED")))

    job = await wait_for_merge(make_client(), MODULE, RECORD_ID)

    assert job == MergeJob(JOB_ID, MergeStatus.COMPLETED)
    assert request_count(mocked) == 1


async def test_several_jobs_raise(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(), payload=jobs_body((JOB_ID, "RUNNING"), (OTHER_JOB_ID, "COMPLETED")))

    with pytest.raises(MultipleMergeJobsError) as caught:
        await wait_for_merge(make_client(), MODULE, RECORD_ID)

    assert caught.value.job_ids == [JOB_ID, OTHER_JOB_ID]
    assert caught.value.master_record_id == RECORD_ID
    assert request_count(mocked) == 1


async def test_no_jobs_not_found(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(), status=204)

    with pytest.raises(MergeJobNotFoundError) as caught:
        await wait_for_merge(make_client(), MODULE, RECORD_ID)

    assert caught.value.job_id is None
    assert "no merge job exists" in str(caught.value)


async def test_timeout_before_job_known(mocked: aioresponses, make_client: ClientFactory,
                                        clock: FakeClock) -> None:
    deadline = clock.now + 5.0

    async def time_out(url: URL, **kwargs: Any) -> None:
        clock.now = deadline
        raise TimeoutError

    mocked.get(merge_url(), callback=time_out)

    with pytest.raises(MergeTimeoutError) as caught:
        await wait_for_merge(make_client(), MODULE, RECORD_ID, timeout=5.0)

    assert caught.value.job_id is None
    assert caught.value.last_status is None
    assert caught.value.polls == 0


# INTERNAL_ERROR during a wait


def add_internal_errors(mocked: aioresponses, count: int) -> None:
    for _ in range(count):
        mocked.get(merge_url(JOB_ID), status=500, payload=error_body("INTERNAL_ERROR"))


async def test_internal_error_mid_wait(mocked: aioresponses, make_client: ClientFactory,
                                       clock: FakeClock) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))
    add_internal_errors(mocked, 2)
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "COMPLETED")))
    client = make_client()

    job = await wait_for_merge(client, MODULE, RECORD_ID, JOB_ID)

    assert job.status is MergeStatus.COMPLETED
    # One poll delay, then the retry delays of 1 and 2 s.
    assert clock.sleeps == [2.0, 1.0, 2.0]
    assert client.stats.retries == 2
    assert client.stats.requests_sent == 4


async def test_retry_stops_at_deadline(mocked: aioresponses, make_client: ClientFactory,
                                       clock: FakeClock) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))
    add_internal_errors(mocked, 10)
    client = make_client(retry=RetryPolicy(jitter=0.0, max_attempts=10))

    with pytest.raises(InternalError):
        await wait_for_merge(client, MODULE, RECORD_ID, JOB_ID, timeout=6.0)

    # Errors at 2, 3 and 5 s. The next retry delay of 4 s would end at 9 s, past the 6 s deadline.
    assert clock.sleeps == [2.0, 1.0, 2.0]
    assert request_count(mocked) == 4


async def test_retry_exactly_to_deadline(mocked: aioresponses, make_client: ClientFactory,
                                         clock: FakeClock) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))
    add_internal_errors(mocked, 10)
    client = make_client(retry=RetryPolicy(jitter=0.0, max_attempts=10))

    with pytest.raises(InternalError):
        await wait_for_merge(client, MODULE, RECORD_ID, JOB_ID, timeout=5.0)

    # A retry at 5 s would be sent at the deadline itself, so it is not made.
    assert clock.sleeps == [2.0, 1.0]
    assert request_count(mocked) == 3


# Cancellation and the client method


async def test_cancel_during_sleep(mocked: aioresponses, make_client: ClientFactory,
                                   clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING")
    clock.hold_sleeps()
    task = asyncio.create_task(wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID))
    await clock.sleeping.wait()
    sent_before_cancel = request_count(mocked)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(5):
        await asyncio.sleep(0)

    assert sent_before_cancel == 1
    assert request_count(mocked) == 1


async def test_cancel_during_poll(mocked: aioresponses, make_client: ClientFactory) -> None:
    started = asyncio.Event()

    async def hang(url: URL, **kwargs: Any) -> None:
        started.set()
        await asyncio.sleep(3600)

    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))
    mocked.get(merge_url(JOB_ID), callback=hang, repeat=True)
    task = asyncio.create_task(wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID))
    await started.wait()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(5):
        await asyncio.sleep(0)

    assert request_count(mocked) == 2


async def test_client_wait_method(mocked: aioresponses, make_client: ClientFactory,
                                  clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING", "COMPLETED")
    policy = PollPolicy(initial_delay=1.0, jitter=0.0, timeout=60.0)

    job = await make_client().wait_for_merge(MODULE, RECORD_ID, int(JOB_ID), policy=policy)

    assert job == MergeJob(JOB_ID, MergeStatus.COMPLETED)
    assert clock.sleeps == [1.0]


async def test_client_wait_method_timeout(mocked: aioresponses, make_client: ClientFactory,
                                          clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING")

    with pytest.raises(MergeTimeoutError):
        await make_client().wait_for_merge(MODULE, RECORD_ID, JOB_ID, timeout=1.0)

    assert clock.sleeps == [1.0]
