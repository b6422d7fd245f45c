"""Fault matrix over real TCP: error pages, broken bodies, dropped connections, redirects, 429.

Replies that HTTP can express come from `FakeZohoServer`. Faults below HTTP
(a close without a response, a close in the middle of the body, silence, one
byte per second) come from `rawserver.RawServer`. Every test ends with the
same checks: the client held no connection when it was closed, every server
connection was closed afterwards, no task was left running and garbage
collection emitted no warning. docs/reliability.md lists the outcome of
each fault and the test that proves it.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from conftest import JOB_ID, MODULE, OTHER_JOB_ID, RECORD_ID, FakeClock, client_factory
from leak_checks import assert_connections_closed, assert_no_leftovers, settle
from rawserver import (
    Behaviour,
    RawServer,
    close_mid_body,
    close_without_response,
    drop_second_request,
    endless_body,
    http_response,
    never_respond,
    trickle,
)

from zoho_merge_async import (
    MergeClient,
    MergeJob,
    MergeStatus,
    PollPolicy,
    RateLimitError,
    RetryPolicy,
    TransportError,
    UnexpectedResponseError,
    ZohoAPIError,
    ZohoError,
    wait_for_merge,
)
from zoho_merge_async._response import MAX_BODY_BYTES
from zoho_merge_async.testing import FakeZohoServer, RawReply, Step, ZohoErrorReply

TOKEN = "1000.fault-matrix-token"
FAST_POLL = PollPolicy(initial_delay=0.01, multiplier=1.0, max_delay=0.01, jitter=0.0,
                       timeout=5.0, min_interval=0.0)
FAST_RETRY = RetryPolicy(initial_delay=0.01, multiplier=1.0, max_delay=0.01, jitter=0.0,
                         max_attempts=4)
# Short enough that the silent and slow servers below cost 0.3 s each.
SHORT_REQUEST_TIMEOUT = 0.3
SETTLE_SECONDS = 2.0

Connect = Callable[..., MergeClient]


def gateway_page(status: int, title: str) -> str:
    return f"<html><head><title>{status} {title}</title></head><body>nginx</body></html>"


def status_body(job_id: str, status: str) -> bytes:
    return json.dumps({"merge": [{"job_id": job_id, "status": status}]}).encode()


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
async def connect(server: FakeZohoServer) -> AsyncIterator[Connect]:
    """Build clients with fast policies; at teardown, check and close each with `close_checked`."""
    defaults: dict[str, Any] = {
        "access_token": TOKEN,
        "api_domain": server.api_domain,
        "poll": FAST_POLL,
        "retry": FAST_RETRY,
        "request_timeout": 5.0,
    }
    async with client_factory(defaults, close=close_checked) as build:
        yield build


async def close_checked(client: MergeClient) -> None:
    """Assert that the client has no connection acquired, then close it and its session."""
    session = client._session
    if session is not None:
        connector = session.connector
        assert connector is not None
        assert len(connector._acquired) == 0
    await client.aclose()
    if session is not None:
        assert session.closed


async def raw_exchange(
    behaviour: Behaviour, call: Callable[[MergeClient], Awaitable[MergeJob]], *,
    request_timeout: float = SHORT_REQUEST_TIMEOUT,
) -> tuple[ZohoError | MergeJob, RawServer, MergeClient]:
    """Run `call` on a client of a RawServer serving `behaviour`; return its job or ZohoError.

    The client is closed and checked, and every server connection is closed, before returning.
    """
    async with RawServer(behaviour) as raw:
        client = MergeClient(TOKEN, api_domain=raw.api_domain, poll=FAST_POLL, retry=FAST_RETRY,
                             request_timeout=request_timeout)
        try:
            outcome: ZohoError | MergeJob = await call(client)
        except ZohoError as error:
            outcome = error
        finally:
            await close_checked(client)
        assert await settle(lambda: raw.open_connections == 0, SETTLE_SECONDS)
    return outcome, raw, client


async def get_status(client: MergeClient) -> MergeJob:
    return await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)


# Error pages and bodies that are not Zoho's JSON: raised at once, never retried


@pytest.mark.parametrize(
    ("reply", "http_status"),
    [
        pytest.param(ZohoErrorReply("BACKEND_DOWN", http_status=500), 500, id="500-other-code"),
        pytest.param(RawReply(status=500, content_type=None), 500, id="500-empty"),
        pytest.param(RawReply(status=500, body=gateway_page(500, "Internal Server Error"),
                              content_type="text/html"), 500, id="500-html"),
        pytest.param(RawReply(status=503, body=gateway_page(503, "Service Unavailable"),
                              content_type="text/html"), 503, id="503-html"),
        pytest.param(RawReply(status=504, body=gateway_page(504, "Gateway Time-out"),
                              content_type="text/html"), 504, id="504-html"),
    ],
)
async def test_error_page_not_retried(server: FakeZohoServer, connect: Connect, reply: Step,
                                      http_status: int) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, [reply, "COMPLETED"])

    with pytest.raises(ZohoError) as caught:
        await connect().get_merge_status(MODULE, RECORD_ID, job_id)

    assert len(server.requests) == 1
    assert getattr(caught.value, "http_status", None) == http_status


async def test_500_other_code_typed(server: FakeZohoServer, connect: Connect) -> None:
    job_id = server.add_job(MODULE, RECORD_ID, [ZohoErrorReply("BACKEND_DOWN", http_status=500)])

    with pytest.raises(ZohoAPIError) as caught:
        await connect().get_merge_status(MODULE, RECORD_ID, job_id)

    assert type(caught.value) is ZohoAPIError
    assert caught.value.code == "BACKEND_DOWN"


@pytest.mark.parametrize("http_status", [500, 503, 504])
async def test_html_page_unexpected(server: FakeZohoServer, connect: Connect,
                                    http_status: int) -> None:
    page = gateway_page(http_status, "Error")
    reply = RawReply(status=http_status, body=page, content_type="text/html")
    job_id = server.add_job(MODULE, RECORD_ID, [reply])

    with pytest.raises(UnexpectedResponseError) as caught:
        await connect().get_merge_status(MODULE, RECORD_ID, job_id)

    assert caught.value.reason == "an error status without a Zoho error body"
    assert caught.value.body_excerpt == page


async def test_gateway_page_ends_wait(server: FakeZohoServer, connect: Connect) -> None:
    page = RawReply(status=502, body=gateway_page(502, "Bad Gateway"), content_type="text/html")
    job_id = server.add_job(MODULE, RECORD_ID, ["RUNNING", page, "COMPLETED"])

    with pytest.raises(UnexpectedResponseError) as caught:
        await wait_for_merge(connect(), MODULE, RECORD_ID, job_id)

    assert caught.value.http_status == 502
    assert len(server.requests) == 2


MAINTENANCE_PAGE = "<html><body><h1>Down for maintenance</h1></body></html>"


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(RawReply(body=MAINTENANCE_PAGE, content_type="text/html"), id="html-200"),
        pytest.param(RawReply(body=b""), id="empty-200"),
        pytest.param(RawReply(body=status_body(JOB_ID, "RUNNING")[:-3]), id="truncated-json"),
    ],
)
async def test_200_not_json(server: FakeZohoServer, connect: Connect, reply: RawReply) -> None:
    server.add_job(MODULE, RECORD_ID, [reply], job_id=JOB_ID)

    with pytest.raises(UnexpectedResponseError) as caught:
        await connect().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert caught.value.reason == "the body is not JSON"
    assert caught.value.http_status == 200
    assert len(server.requests) == 1


async def test_json_as_text_plain_read(server: FakeZohoServer, connect: Connect) -> None:
    reply = RawReply(body=status_body(JOB_ID, "COMPLETED"), content_type="text/plain")
    server.add_job(MODULE, RECORD_ID, [reply], job_id=JOB_ID)

    job = await connect().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert job == MergeJob(JOB_ID, MergeStatus.COMPLETED)


WRONG_SHAPES: dict[str, object] = {
    "empty-merge": {"merge": []},
    "missing-status": {"merge": [{"job_id": JOB_ID}]},
    "other-job": {"merge": [{"job_id": OTHER_JOB_ID, "status": "RUNNING"}]},
    "null-fields": {"merge": [{"job_id": None, "status": None}]},
    "null-merge": {"merge": None},
    "number-fields": {"merge": [{"job_id": int(JOB_ID), "status": 1}]},
    "number-status": {"merge": [{"job_id": JOB_ID, "status": 3}]},
}


@pytest.mark.parametrize("payload", list(WRONG_SHAPES.values()), ids=list(WRONG_SHAPES))
async def test_wrong_shape_over_tcp(server: FakeZohoServer, connect: Connect,
                                    payload: object) -> None:
    server.add_job(MODULE, RECORD_ID, [RawReply(body=json.dumps(payload))], job_id=JOB_ID)

    with pytest.raises(UnexpectedResponseError) as caught:
        await wait_for_merge(connect(), MODULE, RECORD_ID, JOB_ID)

    assert caught.value.http_status == 200
    assert len(server.requests) == 1


# Bodies larger than MAX_BODY_BYTES

CHUNKED_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
HUGE_LENGTH_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 10737418240\r\n\r\n")


@pytest.mark.parametrize("head", [CHUNKED_HEAD, HUGE_LENGTH_HEAD], ids=["chunked", "length"])
async def test_endless_body_cut_off(head: bytes) -> None:
    started = time.monotonic()

    outcome, raw, _ = await raw_exchange(endless_body(head), get_status, request_timeout=10.0)

    assert isinstance(outcome, UnexpectedResponseError)
    assert f"limit of {MAX_BODY_BYTES} bytes" in outcome.reason
    assert time.monotonic() - started < 5.0
    assert raw.connections_accepted == 1


# Connections that close or stall


async def test_close_without_response() -> None:
    outcome, raw, client = await raw_exchange(close_without_response, get_status)

    assert isinstance(outcome, TransportError)
    assert isinstance(outcome.__cause__, aiohttp.ServerDisconnectedError)
    assert "closed the connection" in str(outcome)
    # aiohttp sends an idempotent request once more on a new connection after a disconnect.
    assert len(raw.requests) == 2
    assert client.stats.requests_sent == 1


async def test_close_mid_head_message() -> None:
    response = http_response(200, status_body(JOB_ID, "RUNNING"), headers={"X-Long": "x" * 500})

    outcome, _, _ = await raw_exchange(close_mid_body(response, 100), get_status)

    assert isinstance(outcome, TransportError)
    assert isinstance(outcome.__cause__, aiohttp.ServerDisconnectedError)
    assert "closed the connection" in str(outcome)
    assert "RawResponseMessage" not in str(outcome)


async def test_close_mid_body() -> None:
    response = http_response(200, status_body(JOB_ID, "RUNNING"))

    outcome, raw, _ = await raw_exchange(close_mid_body(response, len(response) - 10), get_status)

    assert isinstance(outcome, TransportError)
    assert isinstance(outcome.__cause__, aiohttp.ClientPayloadError)
    assert len(raw.requests) == 1


@pytest.mark.parametrize("behaviour", [never_respond, trickle(b"HTTP/1.1 200 OK\r\n", 1.0)],
                         ids=["silent", "byte-per-second"])
async def test_stalled_server_times_out(behaviour: Behaviour) -> None:
    elapsed = 0.0

    async def timed_status(client: MergeClient) -> MergeJob:
        nonlocal elapsed
        started = time.monotonic()
        try:
            return await get_status(client)
        finally:
            elapsed = time.monotonic() - started

    outcome, raw, _ = await raw_exchange(behaviour, timed_status)

    assert isinstance(outcome, TransportError)
    assert isinstance(outcome.__cause__, TimeoutError)
    assert f"within {SHORT_REQUEST_TIMEOUT:g} s" in str(outcome)
    assert SHORT_REQUEST_TIMEOUT <= elapsed < SHORT_REQUEST_TIMEOUT + 1.0
    assert len(raw.requests) == 1


async def test_stalled_server_ends_wait() -> None:
    async def wait(client: MergeClient) -> MergeJob:
        return await wait_for_merge(client, MODULE, RECORD_ID, JOB_ID, timeout=0.2)

    outcome, raw, _ = await raw_exchange(never_respond, wait, request_timeout=10.0)

    assert isinstance(outcome, TimeoutError)
    assert isinstance(outcome.__cause__, TransportError)
    assert len(raw.requests) == 1


async def test_dropped_keep_alive_resent() -> None:
    responses = [http_response(200, status_body(JOB_ID, "RUNNING"), keep_alive=True),
                 http_response(200, status_body(JOB_ID, "COMPLETED"), keep_alive=True)]

    async def wait(client: MergeClient) -> MergeJob:
        return await wait_for_merge(client, MODULE, RECORD_ID, JOB_ID)

    outcome, raw, client = await raw_exchange(drop_second_request(responses), wait)

    assert outcome == MergeJob(JOB_ID, MergeStatus.COMPLETED)
    assert raw.connections_accepted == 2
    assert len(raw.requests) == 3
    assert client.stats.requests_sent == 2


# Redirects to another host: not followed, so the token never goes there


@pytest.mark.parametrize("http_status", [301, 302, 307])
async def test_redirect_elsewhere_refused(server: FakeZohoServer, connect: Connect,
                                          http_status: int) -> None:
    async with RawServer(close_without_response, host="127.0.0.2") as other:
        location = f"{other.api_domain}/crm/v7/{MODULE}/{RECORD_ID}/actions/merge"
        reply = RawReply(status=http_status, content_type=None, headers={"Location": location})
        job_id = server.add_job(MODULE, RECORD_ID, [reply])

        with pytest.raises(UnexpectedResponseError) as caught:
            await connect().get_merge_status(MODULE, RECORD_ID, job_id)

        assert "redirect to 127.0.0.2 was not followed" in str(caught.value)
        assert caught.value.http_status == http_status
        assert TOKEN not in str(caught.value)
        assert other.connections_accepted == 0
        assert len(server.requests) == 1


# 429 TOO_MANY_REQUESTS


def http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


# Each header is built when its test runs, so that the HTTP date is 120 s ahead then.
@pytest.mark.parametrize(
    ("make_header", "low", "high"),
    [
        pytest.param(lambda: None, None, None, id="absent"),
        pytest.param(lambda: "7", 7.0, 7.0, id="seconds"),
        pytest.param(lambda: http_date(120), 100.0, 120.0, id="date"),
        pytest.param(lambda: "in a minute", None, None, id="garbage"),
    ],
)
async def test_429_raised_with_retry_after(server: FakeZohoServer, connect: Connect,
                                           make_header: Callable[[], str | None],
                                           low: float | None, high: float | None) -> None:
    header = make_header()
    reply = ZohoErrorReply("TOO_MANY_REQUESTS", retry_after=header)
    job_id = server.add_job(MODULE, RECORD_ID, [reply, "COMPLETED"])

    with pytest.raises(RateLimitError) as caught:
        await wait_for_merge(connect(), MODULE, RECORD_ID, job_id)

    retry_after = caught.value.retry_after
    assert len(server.requests) == 1
    if low is None or high is None:
        assert retry_after is None
    else:
        assert retry_after is not None
        assert low <= retry_after <= high


@pytest.mark.parametrize(
    ("header", "expected_pause"),
    [
        pytest.param("7", 7.0, id="seconds"),
        pytest.param("in a minute", FAST_RETRY.initial_delay, id="garbage"),
        pytest.param(None, FAST_RETRY.initial_delay, id="absent"),
    ],
)
async def test_429_slow_down_pauses(server: FakeZohoServer, connect: Connect,
                                    header: str | None, expected_pause: float) -> None:
    clock = FakeClock()
    reply = ZohoErrorReply("TOO_MANY_REQUESTS", retry_after=header)
    job_id = server.add_job(MODULE, RECORD_ID, [reply, "COMPLETED"])
    client = connect(rate_limit="slow_down", clock=clock.time, sleep=clock.sleep)

    job = await wait_for_merge(client, MODULE, RECORD_ID, job_id, timeout=60.0)

    assert job.status is MergeStatus.COMPLETED
    assert clock.sleeps == [expected_pause]
    assert len(server.requests) == 2
