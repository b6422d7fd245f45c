"""The fake token endpoint of FakeZohoServer, spoken to with plain aiohttp over real TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from conftest import FakeClock

from zoho_merge_async.testing import FakeZohoServer

CLIENT_ID = "1000.FAKECL1ENT"
CLIENT_SECRET = "fake5ecret"
REFRESH_TOKEN = "1000.fakerefresh"
MODULE = "Leads"
RECORD = "2378988000000509963"
FORM = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN}


@pytest.fixture
async def server() -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=()) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest.fixture
def clock(server: FakeZohoServer) -> FakeClock:
    fake = FakeClock()
    server.oauth.clock = fake.time
    return fake


async def refresh(server: FakeZohoServer, session: aiohttp.ClientSession,
                  **changes: str) -> tuple[int, dict[str, Any]]:
    form = {**FORM, **changes}
    async with session.post(f"{server.oauth.accounts_url}/oauth/v2/token", data=form) as reply:
        return reply.status, await reply.json()


async def poll(server: FakeZohoServer, session: aiohttp.ClientSession,
               token: str) -> tuple[int, dict[str, Any]]:
    job_id = server.add_job(MODULE, RECORD, ["RUNNING"])
    url = f"{server.api_domain}/crm/v7/{MODULE}/{RECORD}/actions/merge"
    async with session.get(url, params={"job_id": job_id},
                           headers={"Authorization": f"Zoho-oauthtoken {token}"}) as reply:
        return reply.status, await reply.json()


async def test_refresh_response_in_seconds(server: FakeZohoServer,
                                         session: aiohttp.ClientSession) -> None:
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, token_lifetime=1800)

    status, body = await refresh(server, session)

    assert status == 200
    assert body["expires_in"] == 1800
    assert "expires_in_sec" not in body
    assert body["api_domain"] == server.api_domain
    assert body["token_type"] == "Bearer"
    assert body["access_token"].startswith("1000.")


async def test_refresh_response_in_milliseconds(server: FakeZohoServer,
                                              session: aiohttp.ClientSession) -> None:
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN,
                            expires_in_format="milliseconds")

    _, body = await refresh(server, session)

    assert body["expires_in"] == 3600000
    assert body["expires_in_sec"] == 3600


async def test_response_without_api_domain(server: FakeZohoServer,
                                         session: aiohttp.ClientSession) -> None:
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, api_domain="")

    _, body = await refresh(server, session)

    assert "api_domain" not in body


async def test_issued_token_accepted_until_expiry(server: FakeZohoServer,
                                                  session: aiohttp.ClientSession,
                                                  clock: FakeClock) -> None:
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, token_lifetime=60)
    _, body = await refresh(server, session)
    token = body["access_token"]

    clock.now += 59.9
    before = await poll(server, session, token)
    clock.now += 0.1
    after = await poll(server, session, token)

    assert before[0] == 200
    assert after[0] == 401
    assert after[1]["code"] == "INVALID_TOKEN"


async def test_expire_tokens_keeps_static(server: FakeZohoServer,
                                          session: aiohttp.ClientSession) -> None:
    server.access_tokens.add("1000.static")
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    _, body = await refresh(server, session)

    server.oauth.expire_tokens()

    assert (await poll(server, session, body["access_token"]))[0] == 401
    assert (await poll(server, session, "1000.static"))[0] == 200


async def test_sixteenth_token_replaces_first(server: FakeZohoServer,
                                              session: aiohttp.ClientSession,
                                              clock: FakeClock) -> None:
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    tokens = []
    for index in range(16):
        if index == 10:
            clock.now += 600
        tokens.append((await refresh(server, session))[1]["access_token"])

    first = await poll(server, session, tokens[0])
    second = await poll(server, session, tokens[1])

    assert first[1]["code"] == "INVALID_OAUTHTOKEN"
    assert second[0] == 200


async def test_ten_refreshes_per_window(server: FakeZohoServer,
                                        session: aiohttp.ClientSession,
                                        clock: FakeClock) -> None:
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    for _ in range(10):
        clock.now += 59
        assert "access_token" in (await refresh(server, session))[1]

    status, denied = await refresh(server, session)
    clock.now += 600 - 9 * 59  # the first refresh leaves the 10-minute window
    _, allowed = await refresh(server, session)

    assert status == 200
    assert denied["error"] == "Access Denied"
    assert denied["status"] == "failure"
    assert "too many requests" in denied["error_description"]
    assert "access_token" in allowed


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"refresh_token": "1000.unknown"}, "invalid_code"),
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"client_id": "1000.OTHER"}, "invalid_client"),
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
    ],
)
async def test_refused_refresh(server: FakeZohoServer, session: aiohttp.ClientSession,
                               changes: dict[str, str], error: str) -> None:
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)

    status, body = await refresh(server, session, **changes)

    assert status == 200
    assert body == {"error": error}


async def test_revoked_refresh_token(server: FakeZohoServer,
                                     session: aiohttp.ClientSession) -> None:
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    server.oauth.revoke_refresh_token(REFRESH_TOKEN)

    assert (await refresh(server, session))[1] == {"error": "invalid_code"}


async def test_scripted_failures_in_order(server: FakeZohoServer,
                                          session: aiohttp.ClientSession) -> None:
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    server.oauth.fail_refreshes("invalid_client", times=2)
    server.oauth.fail_refreshes("Access Denied", http_status=400)

    responses = [await refresh(server, session) for _ in range(4)]

    assert [body.get("error") for _, body in responses] == ["invalid_client", "invalid_client",
                                                          "Access Denied", None]
    assert responses[2][0] == 400
    assert server.oauth.refresh_count == 4


async def test_token_endpoint_not_in_requests(server: FakeZohoServer,
                                              session: aiohttp.ClientSession) -> None:
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)

    await refresh(server, session)

    assert server.requests == []
    assert server.oauth.requests[0].form == FORM


async def test_get_on_token_endpoint(server: FakeZohoServer,
                                     session: aiohttp.ClientSession) -> None:
    async with session.get(f"{server.oauth.accounts_url}/oauth/v2/token") as reply:
        assert reply.status == 405


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"client_id": ""}, "client_id"),
        ({"token_lifetime": 0}, "token_lifetime"),
        ({"token_lifetime": float("nan")}, "token_lifetime"),
        ({"expires_in_format": "minutes"}, "expires_in_format"),
    ],
)
def test_add_client_rejects(options: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                 "refresh_token": REFRESH_TOKEN, **options}

    with pytest.raises(ValueError, match=message):
        FakeZohoServer().oauth.add_client(**arguments)


def test_add_client_twice_rejected() -> None:
    fake = FakeZohoServer()
    fake.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)

    with pytest.raises(ValueError, match="already added"):
        fake.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"error": ""}, "error"), ({"times": 0}, "times"), ({"http_status": 600}, "http_status")],
)
def test_fail_refreshes_rejects(options: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"error": "invalid_code", **options}

    with pytest.raises(ValueError, match=message):
        FakeZohoServer().oauth.fail_refreshes(**arguments)
