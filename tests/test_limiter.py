"""The request limiter: its cap, fairness and adaptation, and how MergeClient uses it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioresponses import aioresponses
from conftest import (
    JOB_ID,
    MODULE,
    RECORD_ID,
    TOKEN,
    ClientFactory,
    error_body,
    jobs_body,
    merge_url,
    request_count,
)

from zoho_merge_async import (
    DEFAULT_MAX_CONCURRENCY,
    ConcurrencyLimiter,
    Limiter,
    MergeClient,
    MergeStatus,
    MergeTimeoutError,
    PollPolicy,
    RateLimitError,
    wait_for_merge,
)
from zoho_merge_async.testing import FakeZohoServer, StatusReply

SERVER_TOKEN = "1000.limiter-test-token"


class RecordingLimiter:
    """A `Limiter` that admits everything and records how it was used."""

    def __init__(self) -> None:
        self.entered = 0
        self.in_slot = 0
        self.rate_limits: list[float | None] = []

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.entered += 1
        self.in_slot += 1
        try:
            yield
        finally:
            self.in_slot -= 1

    def note_rate_limited(self, retry_after: float | None) -> None:
        self.rate_limits.append(retry_after)


async def hold_slots(limiter: ConcurrencyLimiter, tasks: int, hold: float) -> int:
    """Run `tasks` tasks that each hold a slot for `hold` seconds; return the peak seen inside."""
    inside = 0
    peak = 0

    async def use() -> None:
        nonlocal inside, peak
        async with limiter.slot():
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(hold)
            inside -= 1

    async with asyncio.TaskGroup() as group:
        for _ in range(tasks):
            group.create_task(use())
    return peak


# ConcurrencyLimiter on its own


async def test_cap_never_exceeded() -> None:
    limiter = ConcurrencyLimiter(3)

    peak = await hold_slots(limiter, tasks=20, hold=0.001)

    assert peak == 3
    assert limiter.peak_in_flight == 3
    assert limiter.in_flight == 0
    assert limiter.queued == 0


async def test_admits_in_fifo_order() -> None:
    limiter = ConcurrencyLimiter(1)
    order: list[int] = []
    release = asyncio.Event()

    async def use(number: int) -> None:
        async with limiter.slot():
            order.append(number)
            await release.wait()

    async with asyncio.TaskGroup() as group:
        for number in range(5):
            group.create_task(use(number))
            await asyncio.sleep(0)
        release.set()

    assert order == [0, 1, 2, 3, 4]


async def test_cancelled_waiter_leaves_queue() -> None:
    limiter = ConcurrencyLimiter(1)
    holder_inside = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot():
            holder_inside.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holder_inside.wait()
    queued = asyncio.create_task(hold())
    await asyncio.sleep(0)
    assert limiter.queued == 1

    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    release.set()
    await holder

    assert limiter.queued == 0
    assert limiter.in_flight == 0
    async with asyncio.timeout(1):
        async with limiter.slot():
            assert limiter.in_flight == 1


async def test_granted_then_cancelled_passes_slot() -> None:
    limiter = ConcurrencyLimiter(1)
    entered: list[str] = []

    async with limiter.slot():
        first = asyncio.create_task(limiter.slot().__aenter__())
        second_done = asyncio.Event()

        async def second() -> None:
            async with limiter.slot():
                entered.append("second")
                second_done.set()

        second_task = asyncio.create_task(second())
        await asyncio.sleep(0)
    # Leaving the block granted the slot to `first`, which is cancelled before it runs.
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first

    async with asyncio.timeout(1):
        await second_done.wait()
    await second_task
    assert entered == ["second"]
    assert limiter.in_flight == 0


async def test_cancel_and_release_same_step() -> None:
    limiter = ConcurrencyLimiter(1)
    holder = limiter.slot()
    await holder.__aenter__()
    queued = asyncio.create_task(limiter.slot().__aenter__())
    await asyncio.sleep(0)

    # The queued task's future is cancelled at once, but its handler runs only later,
    # so the release below finds a cancelled future in the queue.
    queued.cancel()
    await holder.__aexit__(None, None, None)
    with pytest.raises(asyncio.CancelledError):
        await queued

    assert limiter.in_flight == 0
    assert limiter.queued == 0
    assert limiter.has_free_slot


def test_rate_limit_halves_to_one() -> None:
    limiter = ConcurrencyLimiter(10)

    limits = []
    for _ in range(5):
        limiter.note_rate_limited(2.0)
        limits.append(limiter.limit)

    assert limits == [5, 2, 1, 1, 1]
    assert limiter.rate_limited == 5


async def test_limit_restores_after_successes() -> None:
    limiter = ConcurrencyLimiter(4)
    limiter.note_rate_limited(None)
    assert limiter.limit == 2

    for _ in range(2):
        async with limiter.slot():
            pass
    assert limiter.limit == 3

    for _ in range(3):
        async with limiter.slot():
            pass
    assert limiter.limit == 4

    for _ in range(10):
        async with limiter.slot():
            pass
    assert limiter.limit == 4


async def test_lowered_limit_caps_tasks() -> None:
    limiter = ConcurrencyLimiter(8)
    limiter.note_rate_limited(None)
    limiter.note_rate_limited(None)
    release = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot():
            await release.wait()

    async with asyncio.TaskGroup() as group:
        for _ in range(6):
            group.create_task(hold())
        await asyncio.sleep(0.01)
        in_flight, queued = limiter.in_flight, limiter.queued
        release.set()

    assert in_flight == 2
    assert queued == 4


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "10", None])
def test_invalid_max_concurrency(value: Any) -> None:
    with pytest.raises(ValueError, match="invalid max_concurrency"):
        ConcurrencyLimiter(value)


def test_limiter_is_protocol() -> None:
    assert isinstance(ConcurrencyLimiter(2), Limiter)
    assert isinstance(RecordingLimiter(), Limiter)


# MergeClient with a limiter


def test_client_default_cap() -> None:
    client = MergeClient(TOKEN)

    assert DEFAULT_MAX_CONCURRENCY == 10
    assert client.max_concurrency == 10
    assert isinstance(client.limiter, ConcurrencyLimiter)
    assert client.limiter.max_concurrency == 10


def test_client_custom_cap() -> None:
    client = MergeClient(TOKEN, max_concurrency=25)

    assert client.max_concurrency == 25


@pytest.mark.parametrize("value", [0, -3, 1.5, True])
def test_client_rejects_bad_cap(value: Any) -> None:
    with pytest.raises(ValueError, match="invalid max_concurrency"):
        MergeClient(TOKEN, max_concurrency=value)


def test_client_rejects_cap_and_limiter() -> None:
    with pytest.raises(ValueError, match="pass one of them"):
        MergeClient(TOKEN, max_concurrency=5, limiter=ConcurrencyLimiter(5))


def test_client_rejects_non_limiter() -> None:
    with pytest.raises(ValueError, match="invalid limiter"):
        MergeClient(TOKEN, limiter=object())  # type: ignore[arg-type]


async def test_every_request_takes_slot(mocked: aioresponses,
                                        make_client: ClientFactory) -> None:
    limiter = RecordingLimiter()
    client = make_client(limiter=limiter)
    mocked.get(merge_url(JOB_ID), status=500, payload=error_body("INTERNAL_ERROR"))
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))
    mocked.get(merge_url(), payload=jobs_body((JOB_ID, "RUNNING")))

    await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)
    await client.get_merge_jobs(MODULE, RECORD_ID)

    assert client.max_concurrency is None
    assert client.limiter is limiter
    assert limiter.entered == 3
    assert limiter.entered == request_count(mocked)
    assert limiter.in_slot == 0


async def test_429_reported_to_limiter(mocked: aioresponses,
                                       make_client: ClientFactory) -> None:
    limiter = RecordingLimiter()
    client = make_client(limiter=limiter)
    mocked.get(merge_url(JOB_ID), status=429, payload=error_body("TOO_MANY_REQUESTS"),
               headers={"Retry-After": "7"})
    mocked.get(merge_url(JOB_ID), status=429, payload=error_body("TOO_MANY_REQUESTS"))

    for _ in range(2):
        with pytest.raises(RateLimitError):
            await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert limiter.rate_limits == [7.0, None]
    assert client.stats.rate_limited == 2


async def test_default_limiter_lowered_by_429(mocked: aioresponses,
                                              make_client: ClientFactory) -> None:
    client = make_client(max_concurrency=12)
    mocked.get(merge_url(JOB_ID), status=429, payload=error_body("TOO_MANY_REQUESTS"))

    with pytest.raises(RateLimitError):
        await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert isinstance(client.limiter, ConcurrencyLimiter)
    assert client.limiter.limit == 6


# Over TCP against FakeZohoServer


@pytest.fixture
async def server() -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=(SERVER_TOKEN,), max_concurrency=3) as fake:
        yield fake


async def test_client_stays_under_server_cap(server: FakeZohoServer) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, [StatusReply("RUNNING", delay=0.02)])

    async with MergeClient(SERVER_TOKEN, api_domain=server.api_domain,
                           max_concurrency=3) as client:
        jobs = await asyncio.gather(*(
            client.get_merge_status(MODULE, RECORD_ID, job_id) for _ in range(30)))

    assert {job.status for job in jobs} == {MergeStatus.RUNNING}
    assert len(server.requests) == 30
    assert server.max_in_flight == 3
    assert server.rate_limited == 0


async def test_client_over_server_cap_gets_429(server: FakeZohoServer) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, [StatusReply("RUNNING", delay=0.05)])
    server.rate_limit_retry_after = "4"

    async with MergeClient(SERVER_TOKEN, api_domain=server.api_domain,
                           max_concurrency=6) as client:
        results = await asyncio.gather(*(
            client.get_merge_status(MODULE, RECORD_ID, job_id) for _ in range(6)),
            return_exceptions=True)

    errors = [result for result in results if isinstance(result, RateLimitError)]
    assert len(errors) == 3
    assert {error.retry_after for error in errors} == {4.0}
    assert server.rate_limited == 3
    assert client.stats.rate_limited == 3


async def test_shared_limiter_caps_clients(server: FakeZohoServer) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, [StatusReply("RUNNING", delay=0.02)])
    limiter = ConcurrencyLimiter(2)

    async with MergeClient(SERVER_TOKEN, api_domain=server.api_domain,
                           limiter=limiter) as first, \
            MergeClient(SERVER_TOKEN, api_domain=server.api_domain, limiter=limiter) as second:
        await asyncio.gather(*(
            client.get_merge_status(MODULE, RECORD_ID, job_id)
            for client in [first, second] * 6))

    assert len(server.requests) == 12
    assert server.max_in_flight == 2
    assert limiter.peak_in_flight == 2


async def test_session_pool_left_to_limiter(server: FakeZohoServer) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["RUNNING"])

    async with MergeClient(SERVER_TOKEN, api_domain=server.api_domain) as client:
        await client.get_merge_status(MODULE, RECORD_ID, job_id)
        session = client._session

        assert session is not None
        assert session.connector is not None
        assert session.connector.limit == 0


async def test_queue_time_not_request_time(server: FakeZohoServer) -> None:
    # Three replies of 0.15 s one after another take 0.45 s, longer than the 0.25 s
    # request timeout, which therefore must start only once a request has its slot.
    job_id = server.add_job(MODULE, RECORD_ID, [StatusReply("COMPLETED", delay=0.15)])

    async with MergeClient(SERVER_TOKEN, api_domain=server.api_domain, max_concurrency=1,
                           request_timeout=0.25) as client:
        jobs = await asyncio.gather(*(
            client.get_merge_status(MODULE, RECORD_ID, job_id) for _ in range(3)))

    assert [job.status for job in jobs] == [MergeStatus.COMPLETED] * 3
    assert server.max_in_flight == 1


async def test_slot_wait_ends_at_deadline(server: FakeZohoServer) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["COMPLETED"])
    policy = PollPolicy(initial_delay=0.01, max_delay=0.01, min_interval=0.0)

    async with MergeClient(SERVER_TOKEN, api_domain=server.api_domain, max_concurrency=1,
                           poll=policy) as client, client.limiter.slot():
        with pytest.raises(MergeTimeoutError) as caught:
            await wait_for_merge(client, MODULE, RECORD_ID, job_id, timeout=0.1)

    assert caught.value.polls == 0
    assert "no request slot became free" in str(caught.value.__cause__)
    assert server.requests == []


async def test_fake_server_rejects_bad_cap() -> None:
    with pytest.raises(ValueError, match="max_concurrency must be None or a whole number"):
        FakeZohoServer(max_concurrency=0)
