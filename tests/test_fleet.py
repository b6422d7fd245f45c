"""wait_many and wait_all over real TCP, and the status-change callback of a wait."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aioresponses import aioresponses
from conftest import JOB_ID, MODULE, OTHER_JOB_ID, RECORD_ID, ClientFactory, jobs_body, merge_url

from zoho_merge_async import (
    MergeClient,
    MergeJob,
    MergeJobNotFoundError,
    MergeStatus,
    MergeStatusChange,
    MergeTarget,
    MergeTimeoutError,
    PollPolicy,
    WaitOutcome,
    WaitStats,
    wait_all,
    wait_for_merge,
    wait_many,
)
from zoho_merge_async.testing import FakeZohoServer, StatusReply

SERVER_TOKEN = "1000.fleet-test-token"
FAST_POLL = PollPolicy(initial_delay=0.02, multiplier=1.0, max_delay=0.02, jitter=0.0,
                       timeout=5.0, min_interval=0.0)

Connect = Callable[..., MergeClient]


@pytest.fixture
async def server() -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=(SERVER_TOKEN,)) as fake:
        yield fake


@pytest.fixture
async def client(server: FakeZohoServer) -> AsyncIterator[MergeClient]:
    async with MergeClient(SERVER_TOKEN, api_domain=server.api_domain, poll=FAST_POLL) as fleet:
        yield fleet


def record(offset: int) -> str:
    return str(int(RECORD_ID) + offset)


def leftover_tasks() -> list[asyncio.Task[Any]]:
    """Return the tasks still running besides this test and the fake server's handlers."""
    current = asyncio.current_task()
    return [task for task in asyncio.all_tasks()
            if task is not current and not _is_server_task(task)]


def _is_server_task(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and "aiohttp/web_" in code.co_filename.replace("\\", "/")


# MergeTarget and WaitOutcome


def test_target_normalises_ids() -> None:
    target = MergeTarget("Leads", 2378988000000509963, 2423488000000513988)  # type: ignore[arg-type]

    assert target.master_record_id == "2378988000000509963"
    assert target.job_id == "2423488000000513988"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("Le/ads", RECORD_ID, JOB_ID), "invalid module"),
        ((MODULE, "12a", JOB_ID), "invalid master_record_id"),
        ((MODULE, RECORD_ID, "job"), "invalid job_id"),
    ],
)
def test_target_rejects_bad_value(arguments: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MergeTarget(*arguments)


def test_outcome_needs_one_result() -> None:
    target = MergeTarget(MODULE, RECORD_ID, JOB_ID)

    with pytest.raises(ValueError, match="exactly one of job and error"):
        WaitOutcome(0, target, None, None, WaitStats(0, 0, 0.0))


def test_outcome_ok_only_completed() -> None:
    target = MergeTarget(MODULE, RECORD_ID, JOB_ID)
    stats = WaitStats(1, 0, 0.5)

    completed = WaitOutcome(0, target, MergeJob(JOB_ID, MergeStatus.COMPLETED), None, stats)
    failed = WaitOutcome(0, target, MergeJob(JOB_ID, MergeStatus.FAILURE), None, stats)
    errored = WaitOutcome(0, target, None, MergeJobNotFoundError(MODULE, RECORD_ID, JOB_ID),
                          stats)

    assert completed.ok
    assert not failed.ok
    assert not errored.ok


# wait_many and wait_all


async def test_many_in_completion_order(server: FakeZohoServer, client: MergeClient) -> None:
    slow = server.add_job(MODULE, record(0), ["RUNNING", "RUNNING", "COMPLETED"])
    quick = server.add_job(MODULE, record(1), ["COMPLETED"])
    medium = server.add_job(MODULE, record(2), ["RUNNING", "FAILURE"])
    targets = [(MODULE, record(0), slow), (MODULE, record(1), quick), (MODULE, record(2), medium)]

    outcomes = [outcome async for outcome in wait_many(client, targets)]

    assert [outcome.index for outcome in outcomes] == [1, 2, 0]
    assert [outcome.job for outcome in outcomes] == [
        MergeJob(quick, MergeStatus.COMPLETED), MergeJob(medium, MergeStatus.FAILURE),
        MergeJob(slow, MergeStatus.COMPLETED)]
    assert [outcome.stats.polls for outcome in outcomes] == [1, 2, 3]


async def test_all_in_input_order(server: FakeZohoServer, client: MergeClient) -> None:
    targets = [MergeTarget(MODULE, record(offset),
                           server.add_job(MODULE, record(offset), ["RUNNING"] * (3 - offset)
                                          + ["COMPLETED"]))
               for offset in range(3)]

    outcomes = await wait_all(client, targets)

    assert [outcome.target for outcome in outcomes] == targets
    assert [outcome.index for outcome in outcomes] == [0, 1, 2]
    assert all(outcome.ok for outcome in outcomes)
    assert [outcome.stats.polls for outcome in outcomes] == [4, 3, 2]


async def test_failure_keeps_others_running(server: FakeZohoServer,
                                            client: MergeClient) -> None:
    good = server.add_job(MODULE, record(0), ["RUNNING", "RUNNING", "COMPLETED"])
    targets = [(MODULE, record(0), good), (MODULE, record(1), OTHER_JOB_ID)]

    outcomes = await wait_all(client, targets)

    assert outcomes[0].job == MergeJob(good, MergeStatus.COMPLETED)
    assert outcomes[0].error is None
    assert isinstance(outcomes[1].error, MergeJobNotFoundError)
    assert outcomes[1].job is None
    assert outcomes[1].stats.polls == 0


async def test_timeout_is_an_outcome(server: FakeZohoServer, client: MergeClient) -> None:
    stuck = server.add_job(MODULE, record(0), ["RUNNING"])
    done = server.add_job(MODULE, record(1), ["COMPLETED"])

    outcomes = await wait_all(client, [(MODULE, record(0), stuck), (MODULE, record(1), done)],
                              timeout=0.1)

    assert isinstance(outcomes[0].error, MergeTimeoutError)
    assert outcomes[0].stats.polls >= 1
    assert outcomes[1].ok


async def test_shared_polls_counted(server: FakeZohoServer, client: MergeClient) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["SCHEDULED", "RUNNING", "COMPLETED"])
    other = server.add_job(MODULE, record(1), ["RUNNING", "COMPLETED"])
    targets = [(MODULE, RECORD_ID, job_id)] * 4 + [(MODULE, record(1), other)]

    outcomes = await wait_all(client, targets)

    assert [outcome.stats.polls for outcome in outcomes] == [3, 3, 3, 3, 2]
    assert [outcome.stats.shared_polls for outcome in outcomes] == [3, 3, 3, 3, 0]
    assert client.stats.polls_sent == 3 + 2
    assert client.stats.credits_saved == 3 * 3
    assert len(server.requests) == 5


async def test_job_id_optional_in_target(server: FakeZohoServer, client: MergeClient) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["RUNNING", "COMPLETED"])

    outcomes = await wait_all(client, [(MODULE, RECORD_ID)])

    assert outcomes[0].job == MergeJob(job_id, MergeStatus.COMPLETED)
    assert outcomes[0].target == MergeTarget(MODULE, RECORD_ID, None)


async def test_no_targets_no_outcomes(client: MergeClient) -> None:
    assert await wait_all(client, []) == []


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([(MODULE, "12a", JOB_ID)], "invalid master_record_id"),
        ([(MODULE,)], "invalid target"),
        (["Leads/1/2"], "invalid target"),
    ],
)
async def test_bad_target_raises_at_call(server: FakeZohoServer, client: MergeClient,
                                         targets: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wait_many(client, targets)

    assert server.requests == []


async def test_bad_timeout_raises_at_call(server: FakeZohoServer, client: MergeClient) -> None:
    with pytest.raises(ValueError, match="invalid timeout"):
        await wait_all(client, [(MODULE, RECORD_ID, JOB_ID)], timeout=-1)

    assert server.requests == []


async def test_cancel_consumer_cancels_all(server: FakeZohoServer, client: MergeClient,
                                           caplog: pytest.LogCaptureFixture) -> None:
    targets = [(MODULE, record(offset), server.add_job(MODULE, record(offset), ["RUNNING"]))
               for offset in range(5)]
    consumer = asyncio.create_task(wait_all(client, targets))
    while len(server.requests) < 10:  # noqa: ASYNC110 - the server has no event to await
        await asyncio.sleep(0.005)

    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    sent = len(server.requests)
    await asyncio.sleep(0.1)

    assert leftover_tasks() == []
    assert len(server.requests) == sent
    assert [r for r in caplog.records if r.name == "asyncio"] == []


async def test_break_early_cancels_rest(server: FakeZohoServer, client: MergeClient) -> None:
    quick = server.add_job(MODULE, record(0), ["COMPLETED"])
    stuck = [server.add_job(MODULE, record(offset), ["RUNNING"]) for offset in range(1, 4)]
    targets = [(MODULE, record(0), quick)] + [
        (MODULE, record(offset), job_id) for offset, job_id in enumerate(stuck, start=1)]

    async with contextlib.aclosing(wait_many(client, targets)) as outcomes:
        async for outcome in outcomes:
            first = outcome
            break
    sent = len(server.requests)
    await asyncio.sleep(0.1)

    assert first.index == 0
    assert leftover_tasks() == []
    assert len(server.requests) == sent


async def test_callback_error_propagates(server: FakeZohoServer, client: MergeClient) -> None:
    targets = [(MODULE, record(offset), server.add_job(MODULE, record(offset), ["RUNNING"]))
               for offset in range(3)]

    def broken(change: MergeStatusChange) -> None:
        raise RuntimeError("callback bug")

    with pytest.raises(RuntimeError, match="callback bug"):
        await wait_all(client, targets, on_status=broken)
    await asyncio.sleep(0)

    assert leftover_tasks() == []


# Status changes of a single wait


async def test_status_changes_in_order(server: FakeZohoServer, client: MergeClient) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["SCHEDULED", "SCHEDULED", "RUNNING", "RUNNING",
                                                "COMPLETED"])
    changes: list[MergeStatusChange] = []

    job = await wait_for_merge(client, MODULE, RECORD_ID, job_id, on_status=changes.append)

    assert job.status is MergeStatus.COMPLETED
    assert [(change.previous, change.status) for change in changes] == [
        (None, MergeStatus.SCHEDULED),
        (MergeStatus.SCHEDULED, MergeStatus.RUNNING),
        (MergeStatus.RUNNING, MergeStatus.COMPLETED),
    ]
    assert [change.polls for change in changes] == [1, 3, 5]
    assert {change.job_id for change in changes} == {job_id}
    assert {change.master_record_id for change in changes} == {RECORD_ID}
    assert [change.elapsed for change in changes] == sorted(change.elapsed for change in changes)


async def test_client_method_passes_callback(server: FakeZohoServer,
                                             client: MergeClient) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["COMPLETED"])
    changes: list[MergeStatusChange] = []

    await client.wait_for_merge(MODULE, RECORD_ID, job_id, on_status=changes.append)

    assert [change.status for change in changes] == [MergeStatus.COMPLETED]


async def test_fleet_callback_per_target(server: FakeZohoServer, client: MergeClient) -> None:
    first = server.add_job(MODULE, record(0), ["RUNNING", "COMPLETED"])
    second = server.add_job(MODULE, record(1), ["COMPLETED"])
    changes: list[MergeStatusChange] = []

    await wait_all(client, [(MODULE, record(0), first), (MODULE, record(1), second)],
                   on_status=changes.append)

    assert sorted((change.job_id, change.status.value) for change in changes) == sorted([
        (first, "RUNNING"), (first, "COMPLETED"), (second, "COMPLETED")])


async def test_callback_error_ends_wait(mocked: aioresponses,
                                        make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")), repeat=True)

    def broken(change: MergeStatusChange) -> None:
        raise KeyError("callback bug")

    with pytest.raises(KeyError, match="callback bug"):
        await wait_for_merge(make_client(), MODULE, RECORD_ID, JOB_ID, on_status=broken)

    assert sum(len(calls) for calls in mocked.requests.values()) == 1


async def test_slow_replies_no_leftover_tasks(server: FakeZohoServer, client: MergeClient,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    job_id = server.add_job(MODULE, RECORD_ID, [StatusReply("RUNNING", delay=0.3)])
    consumer = asyncio.create_task(wait_all(client, [(MODULE, RECORD_ID, job_id)] * 3))
    while not server.requests:  # noqa: ASYNC110 - the server has no event to await
        await asyncio.sleep(0.005)

    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer

    assert leftover_tasks() == []
    assert caplog.records == []
