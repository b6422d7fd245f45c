"""The `zoho-merge` command with refresh credentials in the environment, on FakeZohoServer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from aioresponses import aioresponses

from zoho_merge_async import _cli
from zoho_merge_async.testing import FakeZohoServer

CLIENT_ID = "1000.CL1CL1ENT0123456789"
CLIENT_SECRET = "cl15ecret0123456789abcdef"
REFRESH_TOKEN = "1000.cl1refresh0123456789.abcdef"
MODULE = "Leads"
RECORD = "2378988000000509963"
VARIABLES = ("ZOHO_ACCESS_TOKEN", "ZOHO_API_DOMAIN", "ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET",
             "ZOHO_REFRESH_TOKEN", "ZOHO_DATA_CENTRE", "ZOHO_ACCOUNTS_URL")


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    """Let aiohttp reach 127.0.0.1 only; any other host fails like a refused connection."""
    with aioresponses(passthrough=["http://127.0.0.1"]):
        yield


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=()) as fake:
        fake.oauth.add_client(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
        monkeypatch.setenv("ZOHO_CLIENT_ID", CLIENT_ID)
        monkeypatch.setenv("ZOHO_CLIENT_SECRET", CLIENT_SECRET)
        monkeypatch.setenv("ZOHO_REFRESH_TOKEN", REFRESH_TOKEN)
        monkeypatch.setenv("ZOHO_ACCOUNTS_URL", fake.oauth.accounts_url)
        yield fake


def read_output(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Return (stdout, stderr) after checking that neither shows a secret."""
    out, err = capsys.readouterr()
    for secret in (CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN):
        assert secret not in out
        assert secret not in err
    return out, err


async def test_status_with_refresh_token(server: FakeZohoServer,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    job_id = server.add_job(MODULE, RECORD, ["RUNNING"])

    code = await _cli.run(["status", MODULE, RECORD, "--job-id", job_id])

    out, err = read_output(capsys)
    assert code == 0
    assert out == f"{job_id} RUNNING\n"
    assert err == ""
    assert server.oauth.refresh_count == 1


async def test_wait_refreshes_expired_token(server: FakeZohoServer,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    job_id = server.add_job(MODULE, RECORD, ["RUNNING", "COMPLETED"])
    # The first token expires between the two polls, or before the first one on a slow
    # machine; either way it costs exactly one more refresh.
    asyncio.get_running_loop().call_later(0.1, server.oauth.expire_tokens)

    code = await _cli.run(["wait", MODULE, RECORD, job_id, "--poll-interval", "0.2",
                           "--timeout", "30", "-v"])

    out, err = read_output(capsys)
    assert code == 0
    assert out == f"{job_id} COMPLETED\n"
    assert "refreshing the access token" in err
    assert server.oauth.refresh_count == 2


async def test_access_token_takes_precedence(server: FakeZohoServer,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    server.access_tokens.add("1000.static.token")
    monkeypatch.setenv("ZOHO_ACCESS_TOKEN", "1000.static.token")
    job_id = server.add_job(MODULE, RECORD, ["COMPLETED"])

    code = await _cli.run(["status", "--api-domain", server.api_domain, MODULE, RECORD,
                           "--job-id", job_id])

    read_output(capsys)
    assert code == 0
    assert server.oauth.refresh_count == 0


async def test_revoked_refresh_token_exits_4(server: FakeZohoServer,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    server.oauth.revoke_refresh_token(REFRESH_TOKEN)

    code = await _cli.run(["status", MODULE, RECORD])

    _, err = read_output(capsys)
    assert code == 4
    assert "generate a new refresh token" in err
    assert server.requests == []


@pytest.mark.parametrize("missing", ["ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET",
                                     "ZOHO_REFRESH_TOKEN"])
async def test_incomplete_credentials_exit_2(server: FakeZohoServer,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str],
                                             missing: str) -> None:
    monkeypatch.delenv(missing)

    code = await _cli.run(["status", MODULE, RECORD])

    _, err = read_output(capsys)
    assert code == 2
    assert f"incomplete refresh credentials: {missing} not set" in err
    assert server.oauth.refresh_count == 0


async def test_no_credentials_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = await _cli.run(["status", MODULE, RECORD])

    _, err = read_output(capsys)
    assert code == 2
    assert "ZOHO_ACCESS_TOKEN is not set or empty" in err
    assert "ZOHO_REFRESH_TOKEN" in err


async def test_unknown_data_centre_exits_2(server: FakeZohoServer,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ZOHO_DATA_CENTRE", "UK")

    code = await _cli.run(["status", MODULE, RECORD])

    _, err = read_output(capsys)
    assert code == 2
    assert "ZOHO_DATA_CENTRE: invalid data centre 'UK'" in err


async def test_data_centre_mismatch_exits_4(server: FakeZohoServer,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    server.oauth.add_client(CLIENT_ID, CLIENT_SECRET, "1000.eu.refresh",
                            api_domain="https://www.zohoapis.eu")
    monkeypatch.setenv("ZOHO_REFRESH_TOKEN", "1000.eu.refresh")
    monkeypatch.setenv("ZOHO_DATA_CENTRE", "us")

    code = await _cli.run(["status", MODULE, RECORD])

    _, err = read_output(capsys)
    assert code == 4
    assert "EU data centre" in err
    assert server.requests == []


@pytest.mark.parametrize("option", ["--client-secret", "--refresh-token=abc"])
async def test_secret_option_rejected(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = await _cli.run(["status", MODULE, RECORD, option, "value"])

    _, err = read_output(capsys)
    assert code == 2
    assert "cannot be given on the command line" in err
    assert "value" not in err
