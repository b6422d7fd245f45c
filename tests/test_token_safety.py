"""The access token stays out of errors, and requests go only to hosts that may receive it.

Covers a server that echoes the token in a body, a Zoho message or a header,
a token response that names a foreign API domain, and closing a
`RefreshTokenProvider` while coroutines wait for its refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from aioresponses import aioresponses
from conftest import MODULE, RECORD_ID, ClientFactory, request_count
from rawserver import RawServer, endless_body
from yarl import URL

from zoho_merge_async import (
    MergeClient,
    RefreshTokenProvider,
    UnexpectedResponseError,
    UntrustedAPIDomainError,
    ZohoAPIError,
    ZohoError,
)
from zoho_merge_async.testing import FakeZohoServer, RawReply, Step, ZohoErrorReply

TOKEN = "1000.ech0edt0ken0123456789.abcdef0123456789"
CHILD = "2378988000000509964"
US_TOKEN_URL = "https://accounts.zoho.com/oauth/v2/token"
CLIENT_ID = "1000.SAFETYCL1ENT0123456789"
CLIENT_SECRET = "safety5ecret0123456789abcdef"
REFRESH_TOKEN = "1000.safetyrefresh0123456789.abcdef"
CHUNKED_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")


@pytest.fixture
def loopback_only() -> Iterator[None]:
    """Let aiohttp reach 127.0.0.1 only; any other host fails like a refused connection."""
    with aioresponses(passthrough=["http://127.0.0.1"]):
        yield


@pytest.fixture
async def server(loopback_only: None) -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=(TOKEN,)) as fake:
        fake.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
        yield fake


async def status_error(server: FakeZohoServer, step: Step) -> ZohoError:
    job_id = server.add_job(MODULE, RECORD_ID, [step])
    async with MergeClient(TOKEN, api_domain=server.api_domain) as client:
        with pytest.raises(ZohoError) as raised:
            await client.get_merge_status(MODULE, RECORD_ID, job_id)
    return raised.value


# Echoed tokens


async def test_echoed_token_in_html(server: FakeZohoServer) -> None:
    page = f"<html><pre>Authorization: Zoho-oauthtoken {TOKEN}</pre>Bad Gateway</html>"

    error = await status_error(server, RawReply(502, page, content_type="text/html"))

    assert isinstance(error, UnexpectedResponseError)
    assert "***" in error.body_excerpt
    assert TOKEN not in error.body_excerpt
    assert TOKEN not in str(error)


async def test_echoed_token_in_message(server: FakeZohoServer) -> None:
    reply = ZohoErrorReply("INVALID_DATA", message=f"the token {TOKEN} is not allowed here")

    error = await status_error(server, reply)

    assert isinstance(error, ZohoAPIError)
    assert error.message == "the token *** is not allowed here"
    assert TOKEN not in str(error)


async def test_echoed_token_in_header(server: FakeZohoServer) -> None:
    reply = RawReply(302, "", content_type=None, headers={"Location": f"https://{TOKEN}/"})

    error = await status_error(server, reply)

    assert isinstance(error, UnexpectedResponseError)
    assert TOKEN not in str(error)


async def test_echoed_token_oversized_body() -> None:
    # A chunked body has no Content-Length, so the client reads up to its limit and
    # keeps the start of the body as the excerpt.
    chunk = f"echo {TOKEN} ".encode() + b"x" * 65536
    async with RawServer(endless_body(CHUNKED_HEAD, chunk)) as raw, \
            MergeClient(TOKEN, api_domain=raw.api_domain) as client:
        with pytest.raises(UnexpectedResponseError) as raised:
            await client.get_merge_jobs(MODULE, RECORD_ID)

    error = raised.value
    assert error.body_excerpt.startswith("echo *** x")
    assert TOKEN not in str(error)


async def test_echoed_token_ends_sentence(server: FakeZohoServer) -> None:
    reply = ZohoErrorReply("INVALID_DATA", message=f"invalid oauth token {TOKEN}.")

    error = await status_error(server, reply)

    assert isinstance(error, ZohoAPIError)
    assert error.message == "invalid oauth token ***."


async def test_short_token_body_intact(loopback_only: None) -> None:
    # "t" occurs inside "status"; only a token standing alone is replaced.
    async with FakeZohoServer(access_tokens=("t",)) as fake, \
            MergeClient("t", api_domain=fake.api_domain) as client:
        job_id = fake.add_job(MODULE, RECORD_ID, ["RUNNING"])
        job = await client.get_merge_status(MODULE, RECORD_ID, job_id)

    assert job.status.value == "RUNNING"


async def test_unechoed_body_unchanged(server: FakeZohoServer) -> None:
    error = await status_error(server, RawReply(502, "<html>Bad Gateway</html>"))

    assert isinstance(error, UnexpectedResponseError)
    assert error.body_excerpt == "<html>Bad Gateway</html>"


# The API domain named by a token response


def token_answer(api_domain: str) -> dict[str, object]:
    return {"access_token": "1000.forged.token", "api_domain": api_domain,
            "token_type": "Bearer", "expires_in": 3600}


@pytest.mark.parametrize("domain", [
    "https://evil.example",
    "https://www.zohoapis.com.evil.example",
    "https://www.zohoapis.com:8443",
    "https://api.zohoapis.com",
])
async def test_foreign_api_domain_rejected(mocked: aioresponses, make_client: ClientFactory,
                                           domain: str) -> None:
    mocked.post(US_TOKEN_URL, payload=token_answer(domain))

    async with RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN) as provider:
        client = make_client(access_token=provider)
        with pytest.raises(UntrustedAPIDomainError) as raised:
            await client.merge_records(MODULE, RECORD_ID, [CHILD])

    assert raised.value.api_domain == domain
    assert str(URL(domain).host) in str(raised.value)
    assert request_count(mocked) == 1


async def test_sandbox_api_domain_followed(mocked: aioresponses,
                                           make_client: ClientFactory) -> None:
    sandbox = "https://sandbox.zohoapis.com"
    mocked.post(US_TOKEN_URL, payload=token_answer(sandbox))
    url = URL(sandbox).with_path(f"/crm/v7/{MODULE}/{RECORD_ID}/actions/merge")
    mocked.get(str(url), status=204)

    async with RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN) as provider:
        jobs = await make_client(access_token=provider).get_merge_jobs(MODULE, RECORD_ID)

    assert jobs == []
    assert ("GET", url) in mocked.requests


async def test_chosen_domain_ignores_foreign(mocked: aioresponses,
                                             make_client: ClientFactory) -> None:
    mocked.post(US_TOKEN_URL, payload=token_answer("https://evil.example"))
    chosen = "https://www.zohoapis.com"
    url = URL(chosen).with_path(f"/crm/v7/{MODULE}/{RECORD_ID}/actions/merge")
    mocked.get(str(url), status=204)

    async with RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN) as provider:
        client = make_client(access_token=provider, api_domain=chosen)
        jobs = await client.get_merge_jobs(MODULE, RECORD_ID)

    assert jobs == []
    assert ("GET", url) in mocked.requests


def test_untrusted_domain_pickles() -> None:
    import pickle

    error = UntrustedAPIDomainError("https://evil.example")

    restored = pickle.loads(pickle.dumps(error))

    assert isinstance(restored, UntrustedAPIDomainError)
    assert restored.api_domain == "https://evil.example"
    assert str(restored) == str(error)


# Closing a provider while a refresh runs


async def wait_for_token_request(server: FakeZohoServer) -> None:
    """Give the refresh time to reach the token endpoint, which delays its response by 5 s."""
    await asyncio.sleep(0.1)
    assert server.oauth.refresh_count == 1


async def test_close_during_refresh_clear(server: FakeZohoServer) -> None:
    server.oauth.refresh_delay = 5.0
    provider = RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN,
                                    accounts_url=server.oauth.accounts_url)
    waiters = [asyncio.create_task(provider.get_token()) for _ in range(3)]
    await wait_for_token_request(server)

    await provider.aclose()
    results = await asyncio.gather(*waiters, return_exceptions=True)

    for result in results:
        assert isinstance(result, RuntimeError)
        assert "closed" in str(result)


async def test_own_cancel_during_close(server: FakeZohoServer) -> None:
    server.oauth.refresh_delay = 5.0
    provider = RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN,
                                    accounts_url=server.oauth.accounts_url)
    waiter = asyncio.create_task(provider.get_token())
    await wait_for_token_request(server)

    waiter.cancel()
    await provider.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiter

    assert waiter.cancelled()


async def test_close_during_wait_clear(server: FakeZohoServer) -> None:
    server.oauth.refresh_delay = 5.0
    job_id = server.add_job(MODULE, RECORD_ID, ["RUNNING"])
    provider = RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN,
                                    accounts_url=server.oauth.accounts_url)
    async with MergeClient(provider, api_domain=server.api_domain) as client:
        wait = asyncio.create_task(client.wait_for_merge(MODULE, RECORD_ID, job_id))
        await wait_for_token_request(server)

        await provider.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await wait
