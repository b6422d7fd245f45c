"""MergeClient over real TCP against FakeZohoServer on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from conftest import JOB_ID, MODULE, OTHER_JOB_ID, RECORD_ID, client_factory

from zoho_merge_async import (
    InternalError,
    InvalidTokenError,
    MergeClient,
    MergeJob,
    MergeJobNotFoundError,
    MergeStatus,
    MergeTimeoutError,
    PollPolicy,
    RateLimitError,
    RetryPolicy,
    TransportError,
    UnexpectedResponseError,
    ZohoAPIError,
    wait_for_merge,
)
from zoho_merge_async._errors import ERROR_CLASSES
from zoho_merge_async._response import MAX_BODY_BYTES
from zoho_merge_async.testing import (
    FakeZohoServer,
    RawReply,
    StatusReply,
    Step,
    ZohoErrorReply,
)

SERVER_TOKEN = "1000.fake-server-token"
# Short delays keep every real wait in this file well under 0.2 s.
FAST_POLL = PollPolicy(initial_delay=0.01, multiplier=1.0, max_delay=0.01, jitter=0.0,
                       timeout=5.0, min_interval=0.0)
FAST_RETRY = RetryPolicy(initial_delay=0.01, multiplier=1.0, max_delay=0.01, jitter=0.0,
                         max_attempts=4)
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"

Connect = Callable[..., MergeClient]


@pytest.fixture
async def server() -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=(SERVER_TOKEN,)) as fake:
        yield fake


@pytest.fixture
async def connect(server: FakeZohoServer) -> AsyncIterator[Connect]:
    """Build clients for `server` with fast policies, and close them before the server stops."""
    defaults: dict[str, Any] = {
        "access_token": SERVER_TOKEN,
        "api_domain": server.api_domain,
        "poll": FAST_POLL,
        "retry": FAST_RETRY,
        "request_timeout": 5.0,
    }
    async with client_factory(defaults) as build:
        yield build


async def wait_for_requests(server: FakeZohoServer, count: int) -> None:
    """Return once `server` has recorded `count` requests; fail after 2 s."""
    # FakeZohoServer has no event to await for an arriving request, so poll its list.
    async with asyncio.timeout(2.0):
        while len(server.requests) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.005)


# Full waits


async def test_wait_until_completed(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["SCHEDULED", "RUNNING", "COMPLETED"])

    job = await wait_for_merge(connect(), MODULE, RECORD_ID, job_id)

    assert job == MergeJob(job_id, MergeStatus.COMPLETED)
    assert len(server.requests) == 3


async def test_wait_returns_failure(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["running", "failed"])

    job = await connect().wait_for_merge(MODULE, RECORD_ID, job_id)

    assert job.status is MergeStatus.FAILURE


async def test_wait_follows_listed_job(server: FakeZohoServer, connect: Connect) -> None:
    server.add_job(MODULE, RECORD_ID, ["SCHEDULED", "RUNNING", "COMPLETED"], job_id=JOB_ID)

    job = await wait_for_merge(connect(), MODULE, RECORD_ID)

    assert job == MergeJob(JOB_ID, MergeStatus.COMPLETED)
    assert [request.job_id for request in server.requests] == [None, JOB_ID, JOB_ID]


async def test_recorded_request_details(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["RUNNING"])

    await connect().get_merge_status(MODULE, RECORD_ID, job_id)

    request, = server.requests
    assert request.method == "GET"
    assert request.path == f"/crm/v7/{MODULE}/{RECORD_ID}/actions/merge"
    assert request.query == {"job_id": job_id}
    assert request.query_string == f"job_id={job_id}"
    assert request.headers["authorization"] == f"Zoho-oauthtoken {SERVER_TOKEN}"


@pytest.mark.parametrize("version", ["v6", "v8"])
async def test_api_version_over_tcp(server: FakeZohoServer, connect: Connect,
                                    version: str) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["COMPLETED"])

    job = await connect(api_version=version).get_merge_status(MODULE, RECORD_ID, job_id)

    assert job.status is MergeStatus.COMPLETED
    assert server.requests[0].path == f"/crm/{version}/{MODULE}/{RECORD_ID}/actions/merge"


async def test_concurrent_waits_one_client(server: FakeZohoServer, connect: Connect) -> None:
    job_ids = [server.add_job(MODULE, str(int(RECORD_ID) + n), ["RUNNING", "COMPLETED"])
               for n in range(8)]
    client = connect()

    jobs = await asyncio.gather(*(
        client.wait_for_merge(MODULE, str(int(RECORD_ID) + n), job_id)
        for n, job_id in enumerate(job_ids)
    ))

    assert [job.status for job in jobs] == [MergeStatus.COMPLETED] * 8
    assert client.stats.requests_sent == 16


# Zoho errors


@pytest.mark.parametrize("envelope", ["top", "merge"])
@pytest.mark.parametrize(("code", "error_class"), sorted(ERROR_CLASSES.items()))
async def test_error_code_over_tcp(
    server: FakeZohoServer,
    connect: Connect,
    code: str,
    error_class: type[ZohoAPIError],
    envelope: Any,
) -> None:
    reply = ZohoErrorReply(code, envelope=envelope, details={"api_name": "id"})
    job_id = server.add_job(MODULE, RECORD_ID, [reply])
    client = connect(retry=RetryPolicy(max_attempts=1))

    with pytest.raises(ZohoAPIError) as caught:
        await client.get_merge_status(MODULE, RECORD_ID, job_id)

    assert type(caught.value) is error_class
    assert caught.value.code == code
    assert caught.value.http_status == reply.http_status
    assert caught.value.message == reply.message
    assert caught.value.details == {"api_name": "id"}


async def test_data_envelope_over_tcp(server: FakeZohoServer, connect: Connect) -> None:
    error = {"code": "NOT_ALLOWED", "details": {}, "message": "not allowed", "status": "error"}
    job_id = server.add_job(MODULE, RECORD_ID, [RawReply(400, json.dumps({"data": [error]}))])

    with pytest.raises(ZohoAPIError) as caught:
        await connect().get_merge_status(MODULE, RECORD_ID, job_id)

    assert caught.value.code == "NOT_ALLOWED"


async def test_rate_limit_retry_after(server: FakeZohoServer, connect: Connect) -> None:
    reply = ZohoErrorReply("TOO_MANY_REQUESTS", retry_after="3")
    job_id = server.add_job(MODULE, RECORD_ID, [reply])

    with pytest.raises(RateLimitError) as caught:
        await connect().get_merge_status(MODULE, RECORD_ID, job_id)

    assert caught.value.retry_after == 3.0
    assert len(server.requests) == 1


async def test_invalid_token_error(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["RUNNING"])

    with pytest.raises(InvalidTokenError) as caught:
        await connect(access_token="1000.revoked").get_merge_status(MODULE, RECORD_ID, job_id)

    assert caught.value.code == "INVALID_TOKEN"
    assert caught.value.http_status == 401


async def test_unknown_module_error(server: FakeZohoServer, connect: Connect) -> None:
    with pytest.raises(ZohoAPIError) as caught:
        await connect().get_merge_status("Custom_Module9", RECORD_ID, JOB_ID)

    assert caught.value.code == "INVALID_MODULE"


async def test_internal_error_then_success(server: FakeZohoServer, connect: Connect) -> None:
    steps: list[Step] = ["RUNNING", ZohoErrorReply("INTERNAL_ERROR"),
             ZohoErrorReply("INTERNAL_ERROR", envelope="merge"), "COMPLETED"]
    job_id = server.add_job(MODULE, RECORD_ID, steps)
    client = connect()

    job = await wait_for_merge(client, MODULE, RECORD_ID, job_id)

    assert job.status is MergeStatus.COMPLETED
    assert len(server.requests) == 4
    assert client.stats.retries == 2


async def test_internal_error_exhausted(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, [ZohoErrorReply("INTERNAL_ERROR")])

    with pytest.raises(InternalError):
        await connect().get_merge_status(MODULE, RECORD_ID, job_id)

    assert len(server.requests) == FAST_RETRY.max_attempts


# Responses that are not Zoho's JSON


async def test_204_unknown_job(server: FakeZohoServer, connect: Connect) -> None:
    server.add_job(MODULE, RECORD_ID, ["RUNNING"], job_id=JOB_ID)

    with pytest.raises(MergeJobNotFoundError) as caught:
        await connect().get_merge_status(MODULE, RECORD_ID, OTHER_JOB_ID)

    assert caught.value.job_id == OTHER_JOB_ID


async def test_204_no_jobs_listed(server: FakeZohoServer, connect: Connect) -> None:
    assert await connect().get_merge_jobs(MODULE, RECORD_ID) == []


async def test_html_502_over_tcp(server: FakeZohoServer, connect: Connect) -> None:
    reply = RawReply(status=502, body=HTML_502, content_type="text/html")
    job_id = server.add_job(MODULE, RECORD_ID, [reply])

    with pytest.raises(UnexpectedResponseError) as caught:
        await connect().get_merge_status(MODULE, RECORD_ID, job_id)

    assert caught.value.http_status == 502
    assert caught.value.body_excerpt == HTML_502
    assert len(server.requests) == 1


async def test_unknown_status_over_tcp(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["RUNNING", "PAUSED", "COMPLETED"])

    with pytest.raises(UnexpectedResponseError, match="PAUSED"):
        await wait_for_merge(connect(), MODULE, RECORD_ID, job_id)

    assert len(server.requests) == 2


async def test_oversized_body_over_tcp(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, [RawReply(body=b" " * (MAX_BODY_BYTES + 1))])

    with pytest.raises(UnexpectedResponseError, match="exceeds the limit"):
        await connect().get_merge_status(MODULE, RECORD_ID, job_id)


async def test_redirect_not_followed(server: FakeZohoServer, connect: Connect) -> None:
    async with FakeZohoServer(access_tokens=(SERVER_TOKEN,)) as other:
        location = f"{other.api_domain}/crm/v7/{MODULE}/{RECORD_ID}/actions/merge"
        reply = RawReply(status=302, content_type=None, headers={"Location": location})
        job_id = server.add_job(MODULE, RECORD_ID, [reply])

        with pytest.raises(UnexpectedResponseError, match=r"redirect to 127\.0\.0\.1 "):
            await connect().get_merge_status(MODULE, RECORD_ID, job_id)

        assert other.requests == []


# Transport failures and cancellation


async def test_request_timeout_over_tcp(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, [StatusReply("RUNNING", delay=0.3)])

    with pytest.raises(TransportError, match="request timeout") as caught:
        await connect(request_timeout=0.05).get_merge_status(MODULE, RECORD_ID, job_id)

    assert isinstance(caught.value.__cause__, TimeoutError)


async def test_slow_reply_hits_deadline(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, [StatusReply("RUNNING", delay=0.3)])

    with pytest.raises(MergeTimeoutError) as caught:
        await wait_for_merge(connect(), MODULE, RECORD_ID, job_id, timeout=0.05)

    assert isinstance(caught.value.__cause__, TransportError)
    assert caught.value.polls == 0


async def test_wait_deadline_over_tcp(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["RUNNING"])

    with pytest.raises(MergeTimeoutError) as caught:
        await wait_for_merge(connect(), MODULE, RECORD_ID, job_id, timeout=0.1)

    assert caught.value.last_status is MergeStatus.RUNNING
    assert caught.value.polls == len(server.requests)
    assert caught.value.elapsed >= 0.1


async def test_connection_refused(connect: Connect) -> None:
    closed = FakeZohoServer(access_tokens=(SERVER_TOKEN,))
    await closed.start()
    api_domain = closed.api_domain
    await closed.close()

    with pytest.raises(TransportError) as caught:
        await connect(api_domain=api_domain).get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectionError)


async def test_cancel_delayed_request(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, [StatusReply("RUNNING", delay=0.3)])
    task = asyncio.create_task(wait_for_merge(connect(), MODULE, RECORD_ID, job_id))
    await wait_for_requests(server, 1)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.05)

    assert len(server.requests) == 1


# Borrowed session


async def test_borrowed_session_kept_open(server: FakeZohoServer) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, ["COMPLETED"])

    async with aiohttp.ClientSession() as session:
        async with MergeClient(SERVER_TOKEN, api_domain=server.api_domain,
                               session=session) as client:
            await client.get_merge_status(MODULE, RECORD_ID, job_id)

        assert not session.closed
        async with MergeClient(SERVER_TOKEN, api_domain=server.api_domain,
                               session=session) as second:
            job = await second.get_merge_status(MODULE, RECORD_ID, job_id)

    assert job.status is MergeStatus.COMPLETED
    assert len(server.requests) == 2
