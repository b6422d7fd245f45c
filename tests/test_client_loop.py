"""A client used from a second event loop raises a clear error instead of aiohttp's."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aioresponses import aioresponses
from conftest import JOB_ID, MODULE, RECORD_ID, TOKEN, merge_url, request_count

from zoho_merge_async import MergeClient, MergeStatus
from zoho_merge_async.testing import FakeZohoServer


def test_second_event_loop_rejected(mocked: aioresponses) -> None:
    mocked.get(merge_url(JOB_ID), payload={"merge": [{"job_id": JOB_ID, "status": "RUNNING"}]},
               repeat=True)
    client = MergeClient(TOKEN)

    async def first_use() -> MergeStatus:
        return (await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)).status

    async def second_use() -> None:
        try:
            await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)
        finally:
            await client.aclose()

    assert asyncio.run(first_use()) is MergeStatus.RUNNING
    with pytest.raises(RuntimeError, match="create one client per event loop"):
        asyncio.run(second_use())

    assert request_count(mocked) == 1


def test_same_loop_reuse_allowed(mocked: aioresponses) -> None:
    mocked.get(merge_url(JOB_ID), payload={"merge": [{"job_id": JOB_ID, "status": "RUNNING"}]},
               repeat=True)

    async def use_twice() -> int:
        async with MergeClient(TOKEN) as client:
            await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)
            await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)
            return client.stats.requests_sent

    assert asyncio.run(use_twice()) == 2


def test_second_loop_over_tcp() -> None:
    # Both runs serve the same port, so the second run would reuse the pooled connection.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = MergeClient(TOKEN, api_domain=f"http://127.0.0.1:{port}")

    async def use(close: bool) -> MergeStatus:
        async with FakeZohoServer(access_tokens=(TOKEN,), port=port) as server:
            job_id = server.add_job(MODULE, RECORD_ID, ["RUNNING"], job_id=JOB_ID)
            try:
                return (await client.get_merge_status(MODULE, RECORD_ID, job_id)).status
            finally:
                if close:
                    await client.aclose()

    assert asyncio.run(use(close=False)) is MergeStatus.RUNNING
    with pytest.raises(RuntimeError, match="create one client per event loop"):
        asyncio.run(use(close=True))
