"""Token refresh over real TCP: RefreshTokenProvider and MergeClient against FakeZohoServer.

Every test here runs with aioresponses letting only http://127.0.0.1 through,
so a request that a bug sends to a real Zoho host fails instead of leaving
the machine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from conftest import FakeClock

from zoho_merge_async import (
    DataCentre,
    DataCentreMismatchError,
    InvalidClientError,
    InvalidRefreshTokenError,
    InvalidTokenError,
    MergeClient,
    MergeStatus,
    PollPolicy,
    RefreshRateLimitError,
    RefreshTokenProvider,
    RetryPolicy,
    TokenRefreshError,
    wait_for_merge,
)
from zoho_merge_async.testing import FakeZohoServer, Step, ZohoErrorReply

CLIENT_ID = "1000.CL1ENT1D0123456789ABCDEF"
CLIENT_SECRET = "5ecret0f7he0auth0cl1ent0123456789abcdef"
REFRESH_TOKEN = "1000.refre5h70ken0123456789abcdef.0123456789abcdef0123"
MODULE = "Leads"
FIRST_RECORD = 2378988000000600000
FAST_POLL = PollPolicy(initial_delay=0.01, multiplier=1.0, max_delay=0.01, jitter=0.0,
                       timeout=60.0, min_interval=0.0)
FAST_RETRY = RetryPolicy(initial_delay=0.01, multiplier=1.0, max_delay=0.01, jitter=0.0)


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    """Let aiohttp reach 127.0.0.1 only; any other host fails like a refused connection."""
    with aioresponses(passthrough=["http://127.0.0.1"]):
        yield


@pytest.fixture
async def server() -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=()) as fake:
        fake.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
        yield fake


@pytest.fixture
async def provider(server: FakeZohoServer) -> AsyncIterator[RefreshTokenProvider]:
    async with RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN,
                                    accounts_url=server.oauth.accounts_url) as made:
        yield made


def make_provider(server: FakeZohoServer, **options: Any) -> RefreshTokenProvider:
    arguments: dict[str, Any] = {"accounts_url": server.oauth.accounts_url}
    arguments.update(options)
    secret = arguments.pop("client_secret", CLIENT_SECRET)
    return RefreshTokenProvider(CLIENT_ID, secret, REFRESH_TOKEN, **arguments)


class GatedSleep:
    """Poll sleep that blocks every caller until `release()`, then returns at once.

    All callers resume in the same event-loop step, so each sends its next poll
    with the token it had before any response arrives. A real sleep after the
    gate would spread the polls over the time the loop takes to wake them all,
    and on a busy machine a refresh could finish before the last ones start.
    """

    def __init__(self) -> None:
        self.blocked = 0
        self.all_blocked = asyncio.Event()
        self.expected = 0
        self._gate = asyncio.Event()

    async def sleep(self, delay: float) -> None:
        self.blocked += 1
        if self.blocked == self.expected:
            self.all_blocked.set()
        await self._gate.wait()

    def release(self) -> None:
        self._gate.set()


def add_jobs(server: FakeZohoServer, count: int, steps: list[Step]) -> list[tuple[str, str]]:
    pairs = []
    for index in range(count):
        record = str(FIRST_RECORD + index)
        pairs.append((record, server.add_job(MODULE, record, steps)))
    return pairs


# Many coroutines, one refresh


async def test_thousand_waits_one_refresh(server: FakeZohoServer,
                                          provider: RefreshTokenProvider) -> None:
    jobs = add_jobs(server, 1000, ["RUNNING", "COMPLETED"])
    gate = GatedSleep()
    gate.expected = len(jobs)
    first_token = await provider.get_token()

    async with MergeClient(provider, poll=FAST_POLL, sleep=gate.sleep) as client:
        waits = [asyncio.create_task(wait_for_merge(client, MODULE, record, job))
                 for record, job in jobs]
        await asyncio.wait_for(gate.all_blocked.wait(), 30)
        # Every wait has polled once with the first token; now that token expires.
        server.oauth.expire_tokens()
        gate.release()
        results = await asyncio.gather(*waits)
        stats = client.stats

    assert all(job.status is MergeStatus.COMPLETED for job in results)
    assert server.oauth.refresh_count == 2
    assert provider.refresh_count == 2
    assert stats.requests_sent == 3000
    assert stats.retries == 0
    # 1000 first polls, then 1000 second polls that the server rejected.
    sent_with_first = [request for request in server.requests
                       if request.headers["authorization"].endswith(first_token)]
    assert len(sent_with_first) == 2000


async def test_thousand_callers_proactive_refresh(server: FakeZohoServer) -> None:
    clock = FakeClock()
    server.oauth.clock = clock.time
    jobs = add_jobs(server, 1000, ["RUNNING", "COMPLETED"])
    gate = GatedSleep()
    gate.expected = len(jobs)

    async with make_provider(server, clock=clock.time) as provider, \
            MergeClient(provider, poll=FAST_POLL, sleep=gate.sleep) as client:
        waits = [asyncio.create_task(wait_for_merge(client, MODULE, record, job))
                 for record, job in jobs]
        await asyncio.wait_for(gate.all_blocked.wait(), 30)
        clock.now += 3600 - 300  # the default refresh margin before the hour's end
        gate.release()
        results = await asyncio.gather(*waits)
        stats = client.stats

    assert all(job.status is MergeStatus.COMPLETED for job in results)
    assert server.oauth.refresh_count == 2
    assert stats.requests_sent == 2000


async def test_cancelled_waiter_keeps_refresh(server: FakeZohoServer,
                                              provider: RefreshTokenProvider) -> None:
    server.oauth.refresh_delay = 0.1
    first = asyncio.create_task(provider.get_token())
    second = asyncio.create_task(provider.get_token())
    await asyncio.sleep(0)  # both tasks now await the one refresh

    first.cancel()
    token = await second

    assert first.cancelled()
    assert token.startswith("1000.")
    assert server.oauth.refresh_count == 1
    assert await provider.get_token() == token


async def test_refresh_failure_shared_then_retried(server: FakeZohoServer,
                                                   provider: RefreshTokenProvider) -> None:
    server.oauth.refresh_delay = 0.05
    server.oauth.fail_refreshes("invalid_code")

    outcomes = await asyncio.gather(*(provider.get_token() for _ in range(200)),
                                    return_exceptions=True)

    assert all(isinstance(outcome, InvalidRefreshTokenError) for outcome in outcomes)
    assert len({id(outcome) for outcome in outcomes}) == 1
    assert server.oauth.refresh_count == 1
    token = await provider.get_token()
    assert token.startswith("1000.")
    assert server.oauth.refresh_count == 2


async def test_rejected_token_never_reused(server: FakeZohoServer,
                                           provider: RefreshTokenProvider) -> None:
    first = await provider.get_token()
    server.oauth.fail_refreshes("Access Denied")

    with pytest.raises(RefreshRateLimitError):
        await provider.refresh(first)
    second = await provider.get_token()

    assert second != first
    assert server.oauth.refresh_count == 3


async def test_refresh_for_old_token_reuses_new(server: FakeZohoServer,
                                                provider: RefreshTokenProvider) -> None:
    first = await provider.get_token()
    second = await provider.refresh(first)

    again = await provider.refresh(first)

    assert again == second
    assert server.oauth.refresh_count == 2


# Lifetimes


async def test_milliseconds_lifetime(server: FakeZohoServer) -> None:
    clock = FakeClock()
    server.oauth.clock = clock.time
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, "1000.ms.refresh",
                            expires_in_format="milliseconds")

    async with RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, "1000.ms.refresh",
                                    accounts_url=server.oauth.accounts_url,
                                    clock=clock.time) as provider:
        first = await provider.get_token()
        clock.now += 3299
        before_margin = await provider.get_token()
        clock.now += 2
        after_margin = await provider.get_token()

    assert before_margin == first
    assert after_margin != first
    assert server.oauth.refresh_count == 2


async def test_short_lifetime_halves_margin(server: FakeZohoServer) -> None:
    clock = FakeClock()
    server.oauth.clock = clock.time
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, "1000.short.refresh", token_lifetime=60)

    async with RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, "1000.short.refresh",
                                    accounts_url=server.oauth.accounts_url,
                                    clock=clock.time) as provider:
        first = await provider.get_token()
        clock.now += 29
        before_half = await provider.get_token()
        clock.now += 2
        after_half = await provider.get_token()

    assert before_half == first
    assert after_half != first


# Refresh errors


async def test_revoked_refresh_token(server: FakeZohoServer,
                                     provider: RefreshTokenProvider) -> None:
    server.oauth.revoke_refresh_token(REFRESH_TOKEN)

    with pytest.raises(InvalidRefreshTokenError) as caught:
        await provider.get_token()

    assert caught.value.error == "invalid_code"
    assert "generate a new refresh token" in str(caught.value)


async def test_wrong_client_secret(server: FakeZohoServer) -> None:
    async with make_provider(server, client_secret="wrong-secret-0123") as provider:
        with pytest.raises(InvalidClientError) as caught:
            await provider.get_token()

    assert caught.value.error == "invalid_client"
    assert "data centre" in str(caught.value)


async def test_eleventh_refresh_denied(server: FakeZohoServer) -> None:
    clock = FakeClock()
    server.oauth.clock = clock.time

    async with make_provider(server) as provider:
        token = await provider.get_token()
        for _ in range(9):
            token = await provider.refresh(token)
        with pytest.raises(RefreshRateLimitError) as caught:
            await provider.refresh(token)
        clock.now += 600
        after_window = await provider.get_token()

    assert caught.value.error == "Access Denied"
    assert "10 minutes" in str(caught.value)
    assert after_window.startswith("1000.")
    assert server.oauth.refresh_count == 12


@pytest.mark.parametrize(
    ("error", "http_status", "expected"),
    [
        ("invalid_code", 200, InvalidRefreshTokenError),
        ("invalid_client", 200, InvalidClientError),
        ("Access Denied", 200, RefreshRateLimitError),
        ("Access Denied", 400, RefreshRateLimitError),
        ("invalid_grant", 200, TokenRefreshError),
    ],
)
async def test_scripted_refresh_error(server: FakeZohoServer, provider: RefreshTokenProvider,
                                      error: str, http_status: int,
                                      expected: type[TokenRefreshError]) -> None:
    server.oauth.fail_refreshes(error, http_status=http_status)

    with pytest.raises(TokenRefreshError) as caught:
        await provider.get_token()

    assert type(caught.value) is expected
    assert caught.value.error == error
    assert caught.value.http_status == http_status


async def test_refresh_error_ends_wait(server: FakeZohoServer,
                                       provider: RefreshTokenProvider) -> None:
    (record, job), = add_jobs(server, 1, ["RUNNING"])
    server.oauth.fail_refreshes("invalid_client")

    async with MergeClient(provider, poll=FAST_POLL) as client:
        with pytest.raises(InvalidClientError):
            await wait_for_merge(client, MODULE, record, job)

    assert server.requests == []


# Data centres


async def test_token_from_other_data_centre(server: FakeZohoServer) -> None:
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, "1000.eu.refresh",
                            api_domain="https://www.zohoapis.eu")
    (record, job), = add_jobs(server, 1, ["COMPLETED"])

    async with RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, "1000.eu.refresh",
                                    data_centre=DataCentre.US,
                                    accounts_url=server.oauth.accounts_url) as provider, \
            MergeClient(provider, poll=FAST_POLL) as client:
        with pytest.raises(DataCentreMismatchError) as caught:
            await wait_for_merge(client, MODULE, record, job)
        cached = repr(provider)

    assert caught.value.token_data_centre == "EU"
    assert caught.value.chosen == "US"
    assert "EU data centre" in str(caught.value)
    assert "token=none" in cached
    assert server.requests == []


async def test_chosen_domain_other_data_centre(server: FakeZohoServer) -> None:
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, "1000.eu.refresh",
                            api_domain="https://www.zohoapis.eu")

    async with RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, "1000.eu.refresh",
                                    accounts_url=server.oauth.accounts_url) as provider, \
            MergeClient(provider, api_domain="https://www.zohoapis.com") as client:
        with pytest.raises(DataCentreMismatchError) as caught:
            await client.get_merge_status(MODULE, str(FIRST_RECORD), "2423488000000513988")

    assert caught.value.chosen == "US"
    assert caught.value.token_data_centre == "EU"
    assert client.stats.requests_sent == 0


async def test_token_api_domain_used(server: FakeZohoServer,
                                     provider: RefreshTokenProvider) -> None:
    (record, job), = add_jobs(server, 1, ["COMPLETED"])

    async with MergeClient(provider) as client:
        before = client.api_domain
        result = await client.get_merge_status(MODULE, record, job)
        after = client.api_domain

    assert result.status is MergeStatus.COMPLETED
    assert before == DataCentre.US.api_domain
    assert after == server.api_domain


# Replay after INVALID_TOKEN


async def test_replay_after_expiry_once(server: FakeZohoServer,
                                        provider: RefreshTokenProvider) -> None:
    (record, job), = add_jobs(server, 1, ["RUNNING"])

    async with MergeClient(provider) as client:
        await client.get_merge_status(MODULE, record, job)
        server.oauth.expire_tokens()
        result = await client.get_merge_status(MODULE, record, job)
        stats = client.stats

    assert result.status is MergeStatus.RUNNING
    assert stats.requests_sent == 3
    assert stats.retries == 0
    assert server.oauth.refresh_count == 2


async def test_sixteenth_token_replaces_oldest(server: FakeZohoServer,
                                       provider: RefreshTokenProvider) -> None:
    (record, job), = add_jobs(server, 1, ["RUNNING"])
    oldest = await provider.get_token()
    token = oldest
    for _ in range(9):
        token = await provider.refresh(token)
    server.oauth.clock = lambda: 1e9  # a new window, so refreshes are allowed again
    for _ in range(6):
        token = await provider.refresh(token)
    server.oauth.clock = lambda: 0.0  # every issued token is valid again, unless replaced

    async with aiohttp.ClientSession() as session:
        url = f"{server.api_domain}/crm/v7/{MODULE}/{record}/actions/merge"
        async with session.get(url, headers={"Authorization": f"Zoho-oauthtoken {oldest}"},
                               params={"job_id": job}) as reply:
            body = await reply.json()

    assert reply.status == 401
    assert body["code"] == "INVALID_OAUTHTOKEN"


async def test_post_replayed_once(server: FakeZohoServer,
                                  provider: RefreshTokenProvider) -> None:
    master, child = str(FIRST_RECORD), str(FIRST_RECORD + 1)
    server.merges.add_record(MODULE, master)
    server.merges.add_record(MODULE, child)
    await provider.get_token()
    server.oauth.expire_tokens()

    async with MergeClient(provider) as client:
        await client.merge_records(MODULE, master, [child])
        stats = client.stats

    posts = [request for request in server.requests if request.method == "POST"]
    assert len(posts) == 2
    assert stats.requests_sent == 2
    assert not server.merges.has_record(MODULE, child)


async def test_second_rejection_raises(server: FakeZohoServer) -> None:
    server.access_tokens.add("1000.static.token")
    (record, job), = add_jobs(server, 1, ["RUNNING"])

    class AlwaysStale:
        api_domain = server.api_domain
        refreshes = 0

        async def get_token(self) -> str:
            return "1000.stale.token"

        async def refresh(self, rejected_token: str) -> str | None:
            self.refreshes += 1
            return "1000.also.stale"

    stale = AlwaysStale()
    async with MergeClient(stale, retry=FAST_RETRY) as client:
        with pytest.raises(InvalidTokenError) as caught:
            await client.get_merge_status(MODULE, record, job)
        stats = client.stats

    assert caught.value.code == "INVALID_TOKEN"
    assert stale.refreshes == 1
    assert stats.requests_sent == 2
    assert stats.retries == 0


async def test_replay_not_counted_as_retry(server: FakeZohoServer) -> None:
    server.access_tokens.add("1000.good.token")
    (record, job), = add_jobs(server, 1, [ZohoErrorReply("INTERNAL_ERROR"), "COMPLETED"])

    class RefreshesOnce:
        api_domain = server.api_domain
        token = "1000.stale.token"

        async def get_token(self) -> str:
            return self.token

        async def refresh(self, rejected_token: str) -> str | None:
            self.token = "1000.good.token"
            return self.token

    async with MergeClient(RefreshesOnce(), retry=FAST_RETRY) as client:
        result = await client.get_merge_status(MODULE, record, job)
        stats = client.stats

    assert result.status is MergeStatus.COMPLETED
    assert stats.requests_sent == 3
    assert stats.retries == 1


async def test_static_token_not_replayed(server: FakeZohoServer) -> None:
    (record, job), = add_jobs(server, 1, ["RUNNING"])

    async with MergeClient("1000.unknown.token", api_domain=server.api_domain) as client:
        with pytest.raises(InvalidTokenError):
            await client.get_merge_status(MODULE, record, job)
        stats = client.stats

    assert stats.requests_sent == 1


# Secrets


async def test_no_secret_in_logs_or_errors(server: FakeZohoServer,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="zoho_merge_async")
    (record, job), = add_jobs(server, 1, ["RUNNING", "COMPLETED"])
    texts: list[str] = []

    async with make_provider(server) as provider, \
            MergeClient(provider, poll=FAST_POLL) as client:
        tokens = [await provider.get_token()]
        server.oauth.expire_tokens()
        await wait_for_merge(client, MODULE, record, job)
        tokens.append(await provider.get_token())
        for error in ("invalid_code", "invalid_client", "Access Denied", "invalid_grant"):
            server.oauth.fail_refreshes(error)
            with pytest.raises(TokenRefreshError) as caught:
                await provider.refresh(tokens[-1])
            texts.append(str(caught.value))
        texts += [repr(provider), repr(client)]

    texts.append(caplog.text)
    secrets = [CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, *tokens]
    leaks = [secret for secret in secrets for text in texts if secret in text]
    assert leaks == []
    assert "refreshing the access token" in caplog.text


async def test_secrets_sent_in_form_body(server: FakeZohoServer,
                                         provider: RefreshTokenProvider) -> None:
    await provider.get_token()

    request, = server.oauth.requests
    assert request.method == "POST"
    assert request.query_string == ""
    assert request.form == {"grant_type": "refresh_token", "client_id": CLIENT_ID,
                            "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}
    assert CLIENT_SECRET not in repr(request)
