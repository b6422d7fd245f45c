"""Requests that were never sent: their errors are raised as they are, and deadlines hold.

A merge whose request never left the client (no token, no slot, no
connection, a data centre mismatch, a passed deadline) cannot have merged, so
it raises its own error instead of `MergeOutcomeUnknownError`. A wait's
deadline also bounds getting a token, and no request is sent after it.
HTTP is mocked with aioresponses or served by FakeZohoServer on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from clock_limiter import ClockJumpLimiter
from conftest import JOB_ID, MODULE, RECORD_ID, ClientFactory, FakeClock, merge_url, request_count

from zoho_merge_async import (
    ConcurrencyLimiter,
    DataCentreMismatchError,
    MergeClient,
    MergeOutcomeUnknownError,
    MergeTimeoutError,
    RefreshTokenProvider,
    TransportError,
    UnexpectedResponseError,
    ZohoError,
    merge_and_wait,
    wait_for_merge,
)
from zoho_merge_async.testing import FakeZohoServer

CHILD = "2378988000000509964"
US_TOKEN_URL = "https://accounts.zoho.com/oauth/v2/token"
CLIENT_ID = "1000.N0T5ENTCL1ENT0123456789"
CLIENT_SECRET = "n0t5entsecret0123456789abcdef"
REFRESH_TOKEN = "1000.n0t5entrefresh0123456789.abcdef"
MERGED = {"merge": [{"code": "SUCCESS", "details": {"id": RECORD_ID}, "message": "merged",
                     "status": "success"}]}


def us_provider() -> RefreshTokenProvider:
    return RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)


class DomainProvider:
    """TokenProvider with a fixed token and API domain."""

    def __init__(self, api_domain: str | None) -> None:
        self.api_domain = api_domain

    async def get_token(self) -> str:
        return "1000.domain.token"

    async def refresh(self, rejected_token: str) -> str | None:
        return None


class StalledRefreshProvider:
    """TokenProvider whose refresh never finishes, as a hung token endpoint would."""

    api_domain = "https://www.zohoapis.com"

    async def get_token(self) -> str:
        return "1000.stalled.token"

    async def refresh(self, rejected_token: str) -> str | None:
        await asyncio.Event().wait()
        return None


async def merge_error(client: MergeClient) -> ZohoError:
    with pytest.raises(ZohoError) as raised:
        await client.merge_records(MODULE, RECORD_ID, [CHILD])
    return raised.value


# Failures before the merge request is sent


@pytest.mark.parametrize(("status", "body"), [
    (500, "<html><body>Internal Server Error</body></html>"),
    (302, ""),
    (200, '{"access_token": "bad token", "expires_in": 3600}'),
])
async def test_token_answer_error_plain(mocked: aioresponses, make_client: ClientFactory,
                                        status: int, body: str) -> None:
    mocked.post(US_TOKEN_URL, status=status, body=body)
    async with us_provider() as provider:
        error = await merge_error(make_client(access_token=provider))

    assert type(error) is UnexpectedResponseError
    assert request_count(mocked) == 1


async def test_token_timeout_plain(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.post(US_TOKEN_URL, exception=TimeoutError())
    async with us_provider() as provider:
        error = await merge_error(make_client(access_token=provider))

    assert type(error) is TransportError
    assert isinstance(error, TransportError)
    assert error.request_sent is False
    assert request_count(mocked) == 1


async def test_data_centre_mismatch_plain(mocked: aioresponses,
                                          make_client: ClientFactory) -> None:
    client = make_client(access_token=DomainProvider("https://www.zohoapis.eu"),
                         api_domain="https://www.zohoapis.com")

    error = await merge_error(client)

    assert type(error) is DataCentreMismatchError
    assert request_count(mocked) == 0


async def test_no_free_slot_plain(mocked: aioresponses, make_client: ClientFactory) -> None:
    limiter = ConcurrencyLimiter(1)
    client = make_client(limiter=limiter)

    async with limiter.slot():
        with pytest.raises(ZohoError) as raised:
            await merge_and_wait(client, MODULE, RECORD_ID, [CHILD], timeout=0.05)

    assert type(raised.value) is TransportError
    assert "no request slot became free" in str(raised.value)
    assert request_count(mocked) == 0


async def test_connect_timeout_plain(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.post(merge_url(), exception=aiohttp.ConnectionTimeoutError())

    error = await merge_error(make_client())

    assert type(error) is TransportError
    assert isinstance(error, TransportError)
    assert error.request_sent is False


@pytest.mark.parametrize(("status", "headers", "body"), [
    (302, {"Location": "https://crm.zoho.com/login"}, ""),
    (404, {}, "<html>Not Found</html>"),
])
async def test_redirect_or_4xx_plain(mocked: aioresponses, make_client: ClientFactory,
                                     status: int, headers: dict[str, str], body: str) -> None:
    mocked.post(merge_url(), status=status, headers=headers, body=body)

    error = await merge_error(make_client())

    assert type(error) is UnexpectedResponseError


async def test_oversized_4xx_plain(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.post(merge_url(), status=400, body=b" " * (2 * 1024 * 1024))

    error = await merge_error(make_client())

    assert type(error) is UnexpectedResponseError


# Failures after the merge request may have reached Zoho


async def test_oversized_2xx_unknown(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.post(merge_url(), status=201, body=b" " * (2 * 1024 * 1024))

    error = await merge_error(make_client())

    assert isinstance(error, MergeOutcomeUnknownError)
    assert isinstance(error.__cause__, UnexpectedResponseError)


async def test_internal_error_400_unknown(mocked: aioresponses,
                                          make_client: ClientFactory) -> None:
    mocked.post(merge_url(), status=400, payload={
        "code": "INTERNAL_ERROR", "details": {}, "message": "", "status": "error"})

    error = await merge_error(make_client())

    assert isinstance(error, MergeOutcomeUnknownError)


async def test_lost_connection_marked_sent(mocked: aioresponses,
                                           make_client: ClientFactory) -> None:
    mocked.post(merge_url(), exception=aiohttp.ServerDisconnectedError())

    error = await merge_error(make_client())

    assert isinstance(error, MergeOutcomeUnknownError)
    assert isinstance(error.__cause__, TransportError)
    assert error.__cause__.request_sent is True


# Deadlines: getting a token, and no request after the deadline


@pytest.fixture
def loopback_only() -> Iterator[None]:
    """Let aiohttp reach 127.0.0.1 only; any other host fails like a refused connection."""
    with aioresponses(passthrough=["http://127.0.0.1"]):
        yield


@pytest.fixture
async def oauth_server(loopback_only: None) -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=()) as fake:
        fake.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
        yield fake


def server_provider(server: FakeZohoServer) -> RefreshTokenProvider:
    return RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN,
                                accounts_url=server.oauth.accounts_url)


async def test_slow_token_wait_times_out(oauth_server: FakeZohoServer) -> None:
    oauth_server.oauth.refresh_delay = 5.0
    job_id = oauth_server.add_job(MODULE, RECORD_ID, ["RUNNING"])
    started = time.monotonic()

    async with server_provider(oauth_server) as provider, \
            MergeClient(provider, api_domain=oauth_server.api_domain) as client:
        with pytest.raises(MergeTimeoutError) as raised:
            await wait_for_merge(client, MODULE, RECORD_ID, job_id, timeout=0.3)

    assert time.monotonic() - started < 2.0
    assert isinstance(raised.value.__cause__, TransportError)
    assert oauth_server.requests == []


async def test_timed_out_wait_keeps_refresh(oauth_server: FakeZohoServer) -> None:
    oauth_server.oauth.refresh_delay = 0.5
    job_id = oauth_server.add_job(MODULE, RECORD_ID, ["RUNNING"])

    async with server_provider(oauth_server) as provider, \
            MergeClient(provider, api_domain=oauth_server.api_domain) as client:
        started = time.monotonic()
        with pytest.raises(MergeTimeoutError):
            await wait_for_merge(client, MODULE, RECORD_ID, job_id, timeout=0.1)
        waited = time.monotonic() - started
        token = await provider.get_token()

    assert waited < 0.4
    assert token.startswith("1000.")
    assert oauth_server.oauth.refresh_count == 1


async def test_slow_token_merge_not_sent(oauth_server: FakeZohoServer) -> None:
    oauth_server.oauth.refresh_delay = 5.0
    started = time.monotonic()

    async with server_provider(oauth_server) as provider, \
            MergeClient(provider, api_domain=oauth_server.api_domain) as client:
        with pytest.raises(ZohoError) as raised:
            await merge_and_wait(client, MODULE, RECORD_ID, [CHILD], timeout=0.3)

    assert time.monotonic() - started < 2.0
    assert type(raised.value) is TransportError
    assert "was not sent" in str(raised.value)
    assert oauth_server.requests == []


async def test_stalled_refresh_bounded(mocked: aioresponses) -> None:
    mocked.get(merge_url(JOB_ID), status=401, payload={
        "code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token",
        "status": "error"})
    started = time.monotonic()

    # The outer timeout only keeps a regression from hanging the test run.
    async with MergeClient(StalledRefreshProvider()) as client, asyncio.timeout(5.0):
        with pytest.raises(MergeTimeoutError):
            await wait_for_merge(client, MODULE, RECORD_ID, JOB_ID, timeout=0.2)

    assert time.monotonic() - started < 2.0
    assert request_count(mocked) == 1


async def test_no_request_after_deadline(mocked: aioresponses, make_client: ClientFactory,
                                         clock: FakeClock) -> None:
    mocked.get(merge_url(JOB_ID), payload={"merge": [{"job_id": JOB_ID, "status": "RUNNING"}]})
    client = make_client(limiter=ClockJumpLimiter(clock, jump=20.0))

    with pytest.raises(MergeTimeoutError):
        await wait_for_merge(client, MODULE, RECORD_ID, JOB_ID, timeout=10.0)

    assert request_count(mocked) == 0
    assert client.stats.requests_sent == 0


async def test_merge_after_deadline_not_sent(mocked: aioresponses, make_client: ClientFactory,
                                             clock: FakeClock) -> None:
    mocked.post(merge_url(), status=201, payload=MERGED)
    client = make_client(limiter=ClockJumpLimiter(clock, jump=20.0))

    with pytest.raises(ZohoError) as raised:
        await merge_and_wait(client, MODULE, RECORD_ID, [CHILD], timeout=10.0)

    assert type(raised.value) is TransportError
    assert request_count(mocked) == 0


def test_transport_error_pickles_flag() -> None:
    import pickle

    error = TransportError("POST www.zohoapis.com/crm/v7/Leads/1/actions/merge failed",
                           request_sent=True)

    restored: Any = pickle.loads(pickle.dumps(error))

    assert restored.request_sent is True
    assert str(restored) == str(error)
