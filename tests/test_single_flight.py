"""Waits sharing polls: one request per round for one job, one listing for one record."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aioresponses import aioresponses
from conftest import (
    JOB_ID,
    MODULE,
    OTHER_JOB_ID,
    RECORD_ID,
    TOKEN,
    ClientFactory,
    FakeClock,
    client_factory,
    jobs_body,
    merge_url,
)
from virtual_clock import VirtualClock
from yarl import URL

from zoho_merge_async import (
    InvalidDataError,
    MergeClient,
    MergeJob,
    MergeJobNotFoundError,
    MergeStatus,
    MergeTimeoutError,
    PollPolicy,
    RetryPolicy,
    wait_for_merge,
)
from zoho_merge_async.testing import FakeZohoServer, StatusReply, ZohoErrorReply

SERVER_TOKEN = "1000.single-flight-token"
FAST_POLL = PollPolicy(initial_delay=0.02, multiplier=1.0, max_delay=0.02, jitter=0.0,
                       timeout=5.0, min_interval=0.0)
FAST_RETRY = RetryPolicy(initial_delay=0.01, multiplier=1.0, max_delay=0.01, jitter=0.0)
THIRD_JOB_ID = "2423488000000514000"

Connect = Callable[..., MergeClient]


@pytest.fixture
async def server() -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=(SERVER_TOKEN,)) as fake:
        yield fake


@pytest.fixture
async def connect(server: FakeZohoServer) -> AsyncIterator[Connect]:
    """Build clients for `server` with fast policies, closed before the server stops."""
    defaults: dict[str, Any] = {"access_token": SERVER_TOKEN, "api_domain": server.api_domain,
                                "poll": FAST_POLL, "retry": FAST_RETRY}
    async with client_factory(defaults) as build:
        yield build


def poller_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks()
            if task.get_name().startswith("zoho-merge poller")]


# Single flight: waits on the same job


async def test_same_job_one_request_per_round(server: FakeZohoServer,
                                              connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["SCHEDULED", "RUNNING", "COMPLETED"])
    client = connect()

    jobs = await asyncio.gather(*(
        wait_for_merge(client, MODULE, RECORD_ID, job_id) for _ in range(20)))

    assert jobs == [MergeJob(job_id, MergeStatus.COMPLETED)] * 20
    assert [request.job_id for request in server.requests] == [job_id] * 3
    assert client.stats.polls_sent == 3
    assert client.stats.credits_saved == 19 * 3
    assert client.stats.requests_sent == 3


async def test_internal_error_retried_once(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, [ZohoErrorReply("INTERNAL_ERROR"), "COMPLETED"])
    client = connect()

    jobs = await asyncio.gather(*(
        wait_for_merge(client, MODULE, RECORD_ID, job_id) for _ in range(5)))

    assert {job.status for job in jobs} == {MergeStatus.COMPLETED}
    assert len(server.requests) == 2
    assert client.stats.retries == 1
    assert client.stats.polls_sent == 1


async def test_shared_error_reaches_all(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["RUNNING", ZohoErrorReply("INVALID_DATA")])
    client = connect()

    results = await asyncio.gather(*(
        wait_for_merge(client, MODULE, RECORD_ID, job_id) for _ in range(3)),
        return_exceptions=True)

    assert [type(result) for result in results] == [InvalidDataError] * 3
    assert len(server.requests) == 2


async def test_cancelled_wait_leaves_others(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["RUNNING", "RUNNING", "RUNNING", "COMPLETED"])
    client = connect()
    first_polled = asyncio.Event()

    def note_first_status(change: object) -> None:
        first_polled.set()

    leaving = asyncio.create_task(wait_for_merge(client, MODULE, RECORD_ID, job_id,
                                                 on_status=note_first_status))
    staying = asyncio.create_task(wait_for_merge(client, MODULE, RECORD_ID, job_id))
    await first_polled.wait()
    leaving.cancel()

    with pytest.raises(asyncio.CancelledError):
        await leaving
    job = await staying

    assert job.status is MergeStatus.COMPLETED
    assert len(server.requests) == 4


async def test_last_wait_stops_poller(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["RUNNING"])
    client = connect()
    tasks = [asyncio.create_task(wait_for_merge(client, MODULE, RECORD_ID, job_id))
             for _ in range(3)]
    while len(server.requests) < 2:  # noqa: ASYNC110 - the server has no event to await
        await asyncio.sleep(0.005)

    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    sent = len(server.requests)
    await asyncio.sleep(0.1)

    assert all(task.cancelled() for task in tasks)
    assert poller_tasks() == []
    assert len(server.requests) == sent


async def test_closing_client_ends_waits(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["RUNNING"])
    client = connect(poll=PollPolicy(initial_delay=30.0, max_delay=30.0, timeout=60.0))
    tasks = [asyncio.create_task(wait_for_merge(client, MODULE, RECORD_ID, job_id))
             for _ in range(2)]
    while not server.requests:  # noqa: ASYNC110 - the server has no event to await
        await asyncio.sleep(0.005)

    await client.aclose()
    async with asyncio.timeout(1):
        results = await asyncio.gather(*tasks, return_exceptions=True)

    assert [type(result) for result in results] == [RuntimeError] * 2
    assert "closed" in str(results[0])
    assert poller_tasks() == []
    assert len(server.requests) == 1


async def test_new_wait_after_poller_stops(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["RUNNING", "COMPLETED"])
    client = connect()

    first = await wait_for_merge(client, MODULE, RECORD_ID, job_id)
    second = await wait_for_merge(client, MODULE, RECORD_ID, job_id)

    assert first.status is MergeStatus.COMPLETED
    assert second.status is MergeStatus.COMPLETED
    assert len(server.requests) == 3
    assert poller_tasks() == []


# Fan-in: waits on several jobs of one master record


async def test_jobs_of_record_fan_in(server: FakeZohoServer, connect: Connect) -> None:
    quick = server.add_job(MODULE, RECORD_ID, ["COMPLETED"], job_id=JOB_ID)
    medium = server.add_job(MODULE, RECORD_ID, ["RUNNING", "COMPLETED"], job_id=OTHER_JOB_ID)
    slow = server.add_job(MODULE, RECORD_ID, ["RUNNING", "RUNNING", "FAILURE"],
                          job_id=THIRD_JOB_ID)
    client = connect()

    jobs = await asyncio.gather(*(
        wait_for_merge(client, MODULE, RECORD_ID, job_id) for job_id in (quick, medium, slow)))

    assert [job.status for job in jobs] == [MergeStatus.COMPLETED, MergeStatus.COMPLETED,
                                            MergeStatus.FAILURE]
    # Two listings while two or more jobs are awaited, then the last job alone.
    assert [request.job_id for request in server.requests] == [None, None, slow]
    assert client.stats.credits_saved == 2 + 1


async def test_missing_job_fetched_alone(server: FakeZohoServer, connect: Connect) -> None:
    known = server.add_job(MODULE, RECORD_ID, ["RUNNING", "COMPLETED"], job_id=JOB_ID)
    client = connect()

    results = await asyncio.gather(
        wait_for_merge(client, MODULE, RECORD_ID, known),
        wait_for_merge(client, MODULE, RECORD_ID, OTHER_JOB_ID),
        return_exceptions=True)

    assert results[0] == MergeJob(known, MergeStatus.COMPLETED)
    assert isinstance(results[1], MergeJobNotFoundError)
    assert results[1].job_id == OTHER_JOB_ID
    assert [request.job_id for request in server.requests] == [None, OTHER_JOB_ID, known]


async def test_wait_without_id_shares_listing(server: FakeZohoServer,
                                              connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["SCHEDULED", "RUNNING", "COMPLETED"])
    client = connect()

    jobs = await asyncio.gather(wait_for_merge(client, MODULE, RECORD_ID),
                                wait_for_merge(client, MODULE, RECORD_ID, job_id))

    assert list(jobs) == [MergeJob(job_id, MergeStatus.COMPLETED)] * 2
    assert [request.job_id for request in server.requests] == [None, job_id, job_id]


async def test_other_records_polled_apart(server: FakeZohoServer, connect: Connect) -> None:
    other_record = str(int(RECORD_ID) + 1)
    first = server.add_job(MODULE, RECORD_ID, ["COMPLETED"])
    second = server.add_job(MODULE, other_record, ["COMPLETED"])
    client = connect()

    await asyncio.gather(wait_for_merge(client, MODULE, RECORD_ID, first),
                         wait_for_merge(client, MODULE, other_record, second))

    assert sorted(request.job_id or "" for request in server.requests) == sorted([first, second])
    assert client.stats.credits_saved == 0


# Deadlines stay per wait


async def test_each_wait_own_deadline(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, timeline=[(0.0, "RUNNING"), (0.4, "COMPLETED")])
    client = connect()

    results = await asyncio.gather(
        wait_for_merge(client, MODULE, RECORD_ID, job_id, timeout=0.15),
        wait_for_merge(client, MODULE, RECORD_ID, job_id, timeout=5.0),
        return_exceptions=True)

    assert isinstance(results[0], MergeTimeoutError)
    assert results[0].elapsed < 0.4
    assert results[1] == MergeJob(job_id, MergeStatus.COMPLETED)


async def test_deadline_during_shared_request(server: FakeZohoServer,
                                              connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, [StatusReply("COMPLETED", delay=0.5)])
    client = connect()

    results = await asyncio.gather(
        wait_for_merge(client, MODULE, RECORD_ID, job_id, timeout=0.1),
        wait_for_merge(client, MODULE, RECORD_ID, job_id, timeout=5.0),
        return_exceptions=True)

    assert isinstance(results[0], MergeTimeoutError)
    assert results[0].elapsed < 0.4
    assert results[0].polls == 0
    assert results[1] == MergeJob(job_id, MergeStatus.COMPLETED)
    assert len(server.requests) == 1


# Schedule on a virtual clock: the floor between polls and jitter


def sequence(*values: float) -> Callable[[], float]:
    """Return a random source that yields `values` in turn, then repeats the last."""
    items: Iterator[float] = itertools.chain(values, itertools.repeat(values[-1]))
    return lambda: next(items)


@pytest.fixture
async def virtual_client() -> AsyncIterator[Callable[..., tuple[MergeClient, VirtualClock]]]:
    async with client_factory({"access_token": TOKEN}) as build_client:

        def build(**overrides: Any) -> tuple[MergeClient, VirtualClock]:
            clock = VirtualClock()
            options: dict[str, Any] = {"clock": clock.time, "sleep": clock.sleep,
                                       "random": lambda: 0.0}
            options.update(overrides)
            return build_client(**options), clock

        yield build


def record_times(mocked: aioresponses, url: str, clock: VirtualClock, times: list[float],
                 statuses: list[str], job_id: str = JOB_ID) -> None:
    """Reply to `url` with `statuses` in turn, and record the clock time of each request."""
    def note(request_url: URL, **kwargs: Any) -> None:
        times.append(clock.now)

    for status in statuses:
        mocked.get(url, payload=jobs_body((job_id, status)), callback=note)


async def test_joining_wait_keeps_floor(mocked: aioresponses,
                                        virtual_client: Callable[..., Any]) -> None:
    policy = PollPolicy(initial_delay=10.0, multiplier=1.0, max_delay=10.0, jitter=0.0,
                        min_interval=3.0)
    client, clock = virtual_client(poll=policy)
    times: list[float] = []
    record_times(mocked, merge_url(JOB_ID), clock, times, ["RUNNING", "RUNNING", "COMPLETED"])

    async def join_later() -> MergeJob:
        await clock.sleep(1.0)
        return await wait_for_merge(client, MODULE, RECORD_ID, JOB_ID)

    async def both() -> list[MergeJob]:
        return list(await asyncio.gather(wait_for_merge(client, MODULE, RECORD_ID, JOB_ID),
                                         join_later()))

    jobs = await clock.run(both())

    assert [job.status for job in jobs] == [MergeStatus.COMPLETED] * 2
    # The late wait is due at once, but the record was polled 1 s before: it waits until 3 s.
    assert [time - 1000.0 for time in times] == [0.0, 3.0, 13.0]


async def test_jitter_desynchronises_records(mocked: aioresponses,
                                             virtual_client: Callable[..., Any]) -> None:
    other_record = str(int(RECORD_ID) + 1)
    policy = PollPolicy(initial_delay=4.0, multiplier=1.0, max_delay=4.0, jitter=0.5,
                        min_interval=0.0)
    client, clock = virtual_client(poll=policy, random=sequence(0.0, 0.9))
    first: list[float] = []
    second: list[float] = []
    record_times(mocked, merge_url(JOB_ID), clock, first, ["RUNNING", "COMPLETED"])
    record_times(mocked, merge_url(OTHER_JOB_ID, record_id=other_record), clock, second,
                 ["RUNNING", "COMPLETED"], job_id=OTHER_JOB_ID)

    await clock.run(asyncio.gather(
        wait_for_merge(client, MODULE, RECORD_ID, JOB_ID),
        wait_for_merge(client, MODULE, other_record, OTHER_JOB_ID)))

    assert first[0] == second[0]
    assert sorted([first[1] - first[0], second[1] - second[0]]) == pytest.approx([2.2, 4.0])


async def test_same_random_lockstep(mocked: aioresponses,
                                    virtual_client: Callable[..., Any]) -> None:
    other_record = str(int(RECORD_ID) + 1)
    policy = PollPolicy(initial_delay=4.0, multiplier=1.0, max_delay=4.0, jitter=0.5,
                        min_interval=0.0)
    client, clock = virtual_client(poll=policy, random=lambda: 0.9)
    first: list[float] = []
    second: list[float] = []
    record_times(mocked, merge_url(JOB_ID), clock, first, ["RUNNING", "COMPLETED"])
    record_times(mocked, merge_url(OTHER_JOB_ID, record_id=other_record), clock, second,
                 ["RUNNING", "COMPLETED"], job_id=OTHER_JOB_ID)

    await clock.run(asyncio.gather(
        wait_for_merge(client, MODULE, RECORD_ID, JOB_ID),
        wait_for_merge(client, MODULE, other_record, OTHER_JOB_ID)))

    assert first == second


async def test_min_interval_floors_delays(mocked: aioresponses, make_client: ClientFactory,
                                          clock: FakeClock) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "COMPLETED")))
    policy = PollPolicy(initial_delay=0.1, multiplier=20.0, max_delay=10.0, jitter=0.0,
                        min_interval=1.0)

    await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID, policy=policy)

    assert clock.sleeps == [1.0, 2.0]


async def test_default_min_interval_applies(mocked: aioresponses, make_client: ClientFactory,
                                            clock: FakeClock) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "COMPLETED")))
    policy = PollPolicy(initial_delay=0.05, max_delay=0.05, jitter=0.0)

    await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID, policy=policy)

    assert PollPolicy().min_interval == 1.0
    assert clock.sleeps == [1.0]


@pytest.mark.parametrize("value", [-0.5, math.nan, math.inf, "1"])
def test_min_interval_rejected(value: Any) -> None:
    with pytest.raises(ValueError, match=r"PollPolicy\.min_interval .*got"):
        PollPolicy(min_interval=value)
