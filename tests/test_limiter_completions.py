"""What raises a lowered `ConcurrencyLimiter` limit: completed requests, not failed ones."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aioresponses import aioresponses
from conftest import JOB_ID, MODULE, RECORD_ID, ClientFactory, merge_url

from zoho_merge_async import ConcurrencyLimiter, TransportError


async def fail_in_slot(limiter: ConcurrencyLimiter) -> None:
    with pytest.raises(TransportError):
        async with limiter.slot():
            raise TransportError("GET www.zohoapis.com/crm/v7/Leads/1/actions/merge failed")


def lowered_limiter() -> ConcurrencyLimiter:
    limiter = ConcurrencyLimiter(4)
    limiter.note_rate_limited(None)
    return limiter


async def test_failed_requests_not_counted() -> None:
    limiter = lowered_limiter()

    for _ in range(5):
        await fail_in_slot(limiter)

    assert limiter.limit == 2
    assert limiter.in_flight == 0


async def test_cancelled_requests_not_counted() -> None:
    limiter = lowered_limiter()

    async def hold() -> None:
        async with limiter.slot():
            await asyncio.Event().wait()

    tasks = [asyncio.create_task(hold()) for _ in range(2)]
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    assert limiter.limit == 2
    assert limiter.in_flight == 0


async def test_completed_requests_counted() -> None:
    limiter = lowered_limiter()
    await fail_in_slot(limiter)

    for _ in range(2):
        async with limiter.slot():
            pass

    assert limiter.limit == 3


async def test_client_errors_not_counted(mocked: aioresponses,
                                         make_client: ClientFactory) -> None:
    limiter = lowered_limiter()
    mocked.get(merge_url(JOB_ID), exception=aiohttp.ServerDisconnectedError(), repeat=True)
    client = make_client(limiter=limiter)

    for _ in range(3):
        with pytest.raises(TransportError):
            await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert limiter.limit == 2
