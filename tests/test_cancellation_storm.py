"""Cancellation at random points, outside deadlines, and retry state shared by many tasks.

The storm starts 10,000 waits on one client over real TCP, with a small
concurrency cap so that most waits queue for a request slot. It cancels each
wait at a random moment from a seeded generator: while its poll waits for a
slot, while the request is in flight, or while it sleeps between polls.
Afterwards every task must be cancelled, and no slot, connection, poller,
task or warning may be left.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from conftest import client_factory
from leak_checks import assert_connections_closed, assert_no_leftovers, settle

from zoho_merge_async import (
    ConcurrencyLimiter,
    InternalError,
    MergeClient,
    MergeJob,
    MergeStatus,
    MergeTimeoutError,
    PollPolicy,
    RetryPolicy,
    wait_for_merge,
)
from zoho_merge_async.testing import FakeZohoServer, StatusReply, ZohoErrorReply

TOKEN = "1000.cancellation-storm-token"
MODULE = "Leads"
FIRST_RECORD_ID = 3000000000000000000
WAITS = 10_000
MAX_CONCURRENCY = 16
# The cancellations start once WARM_UP_POLLS polls received a response. Those waits then sleep
# for POLL_INTERVAL, longer than the CANCEL_WINDOW in which the cancel times are uniformly
# spread, while MAX_CONCURRENCY other waits are in a request and the rest queue.
WARM_UP_POLLS = 200
POLL_INTERVAL = 5.0
CANCEL_WINDOW = 1.0
SEED = 20261204
# Minimum number of cancellations expected in each state. Measured counts are in the thousands
# for "queued", in the hundreds for "sleep" and in the tens for "request".
MIN_PER_STATE = 5
SETTLE_SECONDS = 5.0


class TrackingLimiter:
    """A `ConcurrencyLimiter` that also records which tasks wait for a slot and which hold one."""

    def __init__(self, max_concurrency: int) -> None:
        self.inner = ConcurrencyLimiter(max_concurrency)
        self.queued: set[asyncio.Task[Any]] = set()
        self.holding: set[asyncio.Task[Any]] = set()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        assert task is not None
        self.queued.add(task)
        try:
            async with self.inner.slot():
                self.queued.discard(task)
                self.holding.add(task)
                try:
                    yield
                finally:
                    self.holding.discard(task)
        finally:
            self.queued.discard(task)

    def note_rate_limited(self, retry_after: float | None) -> None:
        self.inner.note_rate_limited(retry_after)


@pytest.fixture(autouse=True)
async def no_leftovers() -> AsyncIterator[None]:
    """Check, after every other fixture closed, that no task is left and no warning is due."""
    yield
    await assert_no_leftovers(SETTLE_SECONDS)


@pytest.fixture
async def server() -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=(TOKEN,)) as fake:
        yield fake
        await assert_connections_closed(fake, SETTLE_SECONDS)


@pytest.fixture
async def connect(server: FakeZohoServer) -> AsyncIterator[Callable[..., MergeClient]]:
    """Build clients of `server`, and close them before the server stops."""
    async with client_factory({"access_token": TOKEN, "api_domain": server.api_domain}) as build:
        yield build


Connect = Callable[..., MergeClient]


def acquired_connections(client: MergeClient) -> int:
    session = client._session
    if session is None or session.connector is None:
        return 0
    return len(session.connector._acquired)


def poll_state(client: MergeClient, limiter: TrackingLimiter, record_id: str) -> str:
    """Name what the poller of `record_id` is doing: queued, request, sleep or other."""
    watch = client._watches._watches.get((MODULE, record_id))
    poller = watch._task if watch is not None else None
    if poller is None:
        return "other"
    if poller in limiter.queued:
        return "queued"
    if poller in limiter.holding:
        return "request"
    if watch is not None and watch._sleeper is not None:
        return "sleep"
    return "other"


# 10,000 cancelled waits


async def test_storm_all_cancelled(server: FakeZohoServer, connect: Connect) -> None:
    records = [str(FIRST_RECORD_ID + index) for index in range(WAITS)]
    jobs = [server.add_job(MODULE, record, ["RUNNING"]) for record in records]
    limiter = TrackingLimiter(MAX_CONCURRENCY)
    policy = PollPolicy(initial_delay=POLL_INTERVAL, multiplier=1.0, max_delay=POLL_INTERVAL,
                        jitter=0.0, min_interval=0.0, timeout=60.0)
    client = connect(limiter=limiter, poll=policy, request_timeout=30.0)
    states: collections.Counter[str] = collections.Counter()
    tasks = [asyncio.create_task(wait_for_merge(client, MODULE, record, job))
             for record, job in zip(records, jobs, strict=True)]

    def cancel(index: int) -> None:
        states[poll_state(client, limiter, records[index])] += 1
        tasks[index].cancel()

    try:
        assert await settle(lambda: len(server.requests) >= WARM_UP_POLLS, SETTLE_SECONDS)
        loop = asyncio.get_running_loop()
        rng = random.Random(SEED)
        for index in range(WAITS):
            loop.call_later(rng.uniform(0.0, CANCEL_WINDOW), cancel, index)
        async with asyncio.timeout(CANCEL_WINDOW + 30.0):
            await asyncio.wait(tasks)

        assert sum(not task.cancelled() for task in tasks) == 0
        assert sum(states.values()) == WAITS
        assert states["queued"] >= MIN_PER_STATE
        assert states["request"] >= MIN_PER_STATE
        assert states["sleep"] >= MIN_PER_STATE
        assert limiter.inner.in_flight == 0
        assert limiter.inner.queued == 0
        assert client._watches._watches == {}
        assert acquired_connections(client) == 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)


async def test_cancel_queued_before_release() -> None:
    limiter = ConcurrencyLimiter(1)

    async def hold_slot() -> None:
        async with limiter.slot():
            await asyncio.Event().wait()

    async with limiter.slot():
        queued = asyncio.create_task(hold_slot())
        await asyncio.sleep(0)
        # Cancelled, and the slot released, before the queued task runs again.
        queued.cancel()
    await asyncio.wait({queued})

    assert queued.cancelled()
    assert limiter.in_flight == 0
    assert limiter.queued == 0


# asyncio.timeout and asyncio.wait_for around a wait

Outer = Callable[[Awaitable[MergeJob], float], Awaitable[MergeJob]]


async def with_timeout(wait: Awaitable[MergeJob], seconds: float) -> MergeJob:
    async with asyncio.timeout(seconds):
        return await wait


OUTER_LIMIT = 0.1


@pytest.mark.parametrize("outer", [with_timeout, asyncio.wait_for], ids=["timeout", "wait_for"])
@pytest.mark.parametrize(("reply_delay", "poll_delay"), [(1.0, 0.01), (0.0, 1.0)],
                         ids=["in-request", "in-sleep"])
async def test_outer_timeout_stops_wait(server: FakeZohoServer, connect: Connect, outer: Outer,
                                        reply_delay: float, poll_delay: float) -> None:
    job_id = server.add_job(MODULE, "2378988000000509963",
                            [StatusReply("RUNNING", delay=reply_delay)])
    policy = PollPolicy(initial_delay=poll_delay, multiplier=1.0, max_delay=poll_delay,
                        jitter=0.0, min_interval=0.0)
    client = connect(poll=policy)
    started = time.monotonic()

    with pytest.raises(TimeoutError) as caught:
        await outer(wait_for_merge(client, MODULE, "2378988000000509963", job_id), OUTER_LIMIT)

    elapsed = time.monotonic() - started
    sent = len(server.requests)
    await asyncio.sleep(0.3)
    assert not isinstance(caught.value, MergeTimeoutError)
    assert OUTER_LIMIT <= elapsed < OUTER_LIMIT + 0.2
    assert len(server.requests) == sent
    assert client._watches._watches == {}
    assert acquired_connections(client) == 0


# Retry state of concurrent waits

RETRY = RetryPolicy(initial_delay=0.01, multiplier=1.0, max_delay=0.01, jitter=0.0,
                    max_attempts=4)


async def test_retry_state_per_wait(server: FakeZohoServer, connect: Connect) -> None:
    internal_errors = [index % RETRY.max_attempts for index in range(12)]
    internal_errors.append(RETRY.max_attempts)
    records = [str(FIRST_RECORD_ID + index) for index in range(len(internal_errors))]
    jobs = []
    for record, count in zip(records, internal_errors, strict=True):
        steps = [ZohoErrorReply("INTERNAL_ERROR", delay=0.01) for _ in range(count)]
        jobs.append(server.add_job(MODULE, record, [*steps, "COMPLETED"]))
    client = connect(retry=RETRY, poll=PollPolicy(timeout=10.0))

    outcomes = await asyncio.gather(
        *(wait_for_merge(client, MODULE, record, job) for record, job in zip(records, jobs,
                                                                                strict=True)),
        return_exceptions=True)

    requests_per_job = collections.Counter(request.job_id for request in server.requests)
    for job, count, outcome in zip(jobs, internal_errors, outcomes, strict=True):
        if count < RETRY.max_attempts:
            assert outcome == MergeJob(job, MergeStatus.COMPLETED)
            assert requests_per_job[job] == count + 1
        else:
            assert isinstance(outcome, InternalError)
            assert requests_per_job[job] == RETRY.max_attempts
    assert client.stats.retries == sum(min(count, RETRY.max_attempts - 1)
                                       for count in internal_errors)
