"""Unit tests of data centres, token responses, RefreshTokenProvider and the client's token use.

HTTP is mocked with aioresponses, so nothing leaves the process.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from conftest import API_DOMAIN, JOB_ID, MODULE, RECORD_ID, FakeClock, merge_url, request_count
from yarl import URL

from zoho_merge_async import (
    DataCentre,
    DataCentreMismatchError,
    InvalidClientError,
    InvalidRefreshTokenError,
    InvalidTokenError,
    MergeClient,
    MergeStatus,
    OAuthScopeMismatchError,
    RefreshRateLimitError,
    RefreshTokenProvider,
    StaticToken,
    TokenProvider,
    TokenRefreshError,
    TransportError,
    UnexpectedResponseError,
    ZohoError,
)
from zoho_merge_async._token_response import parse_token_response

CLIENT_ID = "1000.UN1TCL1ENT0123456789"
CLIENT_SECRET = "un1t5ecret0123456789abcdef"
REFRESH_TOKEN = "1000.un1trefresh0123456789.abcdef"
EU_TOKEN_URL = "https://accounts.zoho.eu/oauth/v2/token"
SECRETS = (CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)


def encode(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def token_response(token: object = "1000.new.token", **extra: Any) -> dict[str, Any]:
    return {"access_token": token, "api_domain": "https://www.zohoapis.eu",
            "token_type": "Bearer", "expires_in": 3600, **extra}


def eu_provider(**options: Any) -> RefreshTokenProvider:
    return RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, data_centre="EU",
                                **options)


class ScriptedProvider:
    """TokenProvider that hands out `tokens` in order and records refresh calls."""

    def __init__(self, *tokens: str | None, api_domain: str | None = API_DOMAIN) -> None:
        self._tokens = list(tokens)
        self.api_domain = api_domain
        self.refreshed: list[str] = []

    async def get_token(self) -> str:
        token = self._tokens[0]
        assert token is not None
        return token

    async def refresh(self, rejected_token: str) -> str | None:
        self.refreshed.append(rejected_token)
        self._tokens.pop(0)
        return self._tokens[0]


# Data centres


@pytest.mark.parametrize(
    ("centre", "accounts_url", "api_domain"),
    [
        (DataCentre.US, "https://accounts.zoho.com", "https://www.zohoapis.com"),
        (DataCentre.EU, "https://accounts.zoho.eu", "https://www.zohoapis.eu"),
        (DataCentre.IN, "https://accounts.zoho.in", "https://www.zohoapis.in"),
        (DataCentre.AU, "https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
        (DataCentre.JP, "https://accounts.zoho.jp", "https://www.zohoapis.jp"),
        (DataCentre.CN, "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
        (DataCentre.CA, "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
        (DataCentre.SA, "https://accounts.zoho.sa", "https://www.zohoapis.sa"),
    ],
)
def test_data_centre_hosts(centre: DataCentre, accounts_url: str, api_domain: str) -> None:
    assert centre.accounts_url == accounts_url
    assert centre.api_domain == api_domain
    assert DataCentre.from_api_domain(api_domain) is centre
    assert DataCentre.from_accounts_url(accounts_url) is centre


def test_data_centre_count() -> None:
    assert [centre.name for centre in DataCentre] == ["US", "EU", "IN", "AU", "JP", "CN", "CA",
                                                      "SA"]


def test_sandbox_and_developer_domains() -> None:
    assert DataCentre.AU.sandbox_api_domain == "https://sandbox.zohoapis.com.au"
    assert DataCentre.AU.developer_api_domain == "https://developer.zohoapis.com.au"
    assert DataCentre.from_api_domain("https://sandbox.zohoapis.com.au") is DataCentre.AU
    assert DataCentre.from_api_domain("https://developer.zohoapis.ca") is DataCentre.CA


@pytest.mark.parametrize("host", ["http://127.0.0.1:8080", "https://zohoapis.com.evil.test",
                                  "https://www.zohoapis.uk"])
def test_unknown_host_no_data_centre(host: str) -> None:
    assert DataCentre.from_api_domain(host) is None


def test_parse_data_centre_name() -> None:
    assert DataCentre.parse(" eu ") is DataCentre.EU
    assert DataCentre.parse(DataCentre.JP) is DataCentre.JP


def test_parse_unknown_data_centre() -> None:
    with pytest.raises(ValueError, match="invalid data centre 'UK': use one of US, EU"):
        DataCentre.parse("UK")


# Token responses


def test_response_in_seconds() -> None:
    parsed = parse_token_response(200, encode(**token_response(expires_in=1800)), SECRETS)

    assert parsed.access_token == "1000.new.token"
    assert parsed.lifetime == 1800.0
    assert parsed.api_domain == "https://www.zohoapis.eu"


def test_response_in_milliseconds() -> None:
    body = encode(**token_response(expires_in=3600000, expires_in_sec=3600))

    assert parse_token_response(200, body, SECRETS).lifetime == 3600.0


def test_response_without_lifetime() -> None:
    fields = token_response()
    del fields["expires_in"]

    assert parse_token_response(200, encode(**fields), SECRETS).lifetime == 3600.0


def test_response_without_api_domain() -> None:
    fields = token_response()
    del fields["api_domain"]

    assert parse_token_response(200, encode(**fields), SECRETS).api_domain is None


def test_response_repr_hides_token() -> None:
    parsed = parse_token_response(200, encode(**token_response()), SECRETS)

    assert "1000.new.token" not in repr(parsed)


@pytest.mark.parametrize("lifetime", [0, -5, "3600", True, float("nan")])
def test_response_bad_lifetime(lifetime: object) -> None:
    fields = token_response(expires_in_sec=lifetime)

    with pytest.raises(UnexpectedResponseError, match="expires_in_sec"):
        parse_token_response(200, encode(**fields), SECRETS)


@pytest.mark.parametrize("token", [None, "", "has space", 42])
def test_response_bad_token(token: object) -> None:
    with pytest.raises(UnexpectedResponseError, match="no usable access_token"):
        parse_token_response(200, encode(**token_response(token=token)), SECRETS)


def test_response_bad_api_domain() -> None:
    body = encode(**token_response(api_domain="http://www.zohoapis.eu"))

    with pytest.raises(UnexpectedResponseError, match="api_domain is unusable"):
        parse_token_response(200, body, SECRETS)


@pytest.mark.parametrize("body", [b"<html>502</html>", b"", b"[1, 2]", b"\xff\xfe"])
def test_response_not_json_object(body: bytes) -> None:
    with pytest.raises(UnexpectedResponseError, match="not a JSON object") as caught:
        parse_token_response(502, body, SECRETS)

    assert caught.value.body_excerpt == ""


def test_response_error_status_without_error() -> None:
    with pytest.raises(UnexpectedResponseError, match="without a token"):
        parse_token_response(500, encode(access_token="1000.x"), SECRETS)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("invalid_code", InvalidRefreshTokenError),
        ("invalid_client", InvalidClientError),
        ("Access Denied", RefreshRateLimitError),
        ("access denied", RefreshRateLimitError),
        ("invalid_grant", TokenRefreshError),
    ],
)
def test_response_error_class(error: str, expected: type[TokenRefreshError]) -> None:
    with pytest.raises(TokenRefreshError) as caught:
        parse_token_response(200, encode(error=error), SECRETS)

    assert type(caught.value) is expected
    assert caught.value.error == error


def test_error_description_masks_secrets() -> None:
    body = encode(error="invalid_client", error_description=f"bad secret {CLIENT_SECRET}")

    with pytest.raises(InvalidClientError) as caught:
        parse_token_response(200, body, SECRETS)

    assert CLIENT_SECRET not in str(caught.value)
    assert "bad secret ***" in str(caught.value)


# Errors


@pytest.mark.parametrize(
    "error",
    [
        TokenRefreshError("invalid_grant", "grant type", 400),
        InvalidRefreshTokenError("invalid_code"),
        InvalidClientError("invalid_client"),
        RefreshRateLimitError("Access Denied", "too many requests"),
        DataCentreMismatchError("https://www.zohoapis.com", "US", "https://www.zohoapis.eu",
                                "EU"),
    ],
)
def test_auth_error_pickles(error: ZohoError) -> None:
    restored = pickle.loads(pickle.dumps(error))

    assert type(restored) is type(error)
    assert str(restored) == str(error)


def test_refresh_errors_say_what_to_do() -> None:
    assert "generate a new refresh token" in str(InvalidRefreshTokenError("invalid_code"))
    assert "accounts server of the data centre" in str(InvalidClientError("invalid_client"))
    assert "wait up to 10 minutes" in str(RefreshRateLimitError("Access Denied"))


# Token providers and the client


def test_static_token_repr_hides_token() -> None:
    assert repr(StaticToken("1000.hidden.token")) == "StaticToken()"


def test_static_token_is_provider() -> None:
    assert isinstance(StaticToken("1000.a.b"), TokenProvider)


def test_client_rejects_other_types() -> None:
    with pytest.raises(ValueError, match="of type int: pass the Zoho OAuth access token"):
        MergeClient(12345)  # type: ignore[arg-type]


def test_client_default_domain_from_provider() -> None:
    client = MergeClient(eu_provider())

    assert client.api_domain == "https://www.zohoapis.eu"


def test_client_repr_hides_secrets() -> None:
    text = repr(MergeClient(eu_provider()))

    assert not any(secret in text for secret in SECRETS)


def test_provider_repr_hides_secrets() -> None:
    text = repr(eu_provider())

    assert not any(secret in text for secret in SECRETS)
    assert "data_centre=EU" in text


@pytest.mark.parametrize("field", ["client_id", "client_secret", "refresh_token"])
@pytest.mark.parametrize("value", ["", "with space 0123", "line\nbreak", None])
def test_provider_bad_credential(field: str, value: object) -> None:
    arguments: dict[str, Any] = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                 "refresh_token": REFRESH_TOKEN, field: value}

    with pytest.raises(ValueError, match=field) as caught:
        RefreshTokenProvider(**arguments)

    assert not value or str(value) not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"data_centre": "UK"}, "invalid data centre"),
        ({"accounts_url": "http://accounts.example.test"}, "use https"),
        ({"accounts_url": "https://accounts.zoho.com/oauth"}, "only scheme and host"),
        ({"refresh_margin": -1}, "invalid refresh_margin"),
        ({"request_timeout": 0}, "invalid request_timeout"),
        ({"request_timeout": float("inf")}, "invalid request_timeout"),
    ],
)
def test_provider_bad_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, **options)


def test_provider_accounts_url_sets_centre() -> None:
    provider = RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN,
                                    accounts_url="https://accounts.zoho.in/")

    assert provider.data_centre is DataCentre.IN
    assert provider.api_domain == "https://www.zohoapis.in"


def test_provider_default_us() -> None:
    provider = RefreshTokenProvider(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)

    assert provider.accounts_url == "https://accounts.zoho.com"
    assert provider.data_centre is DataCentre.US


async def test_provider_posts_form(mocked: aioresponses) -> None:
    mocked.post(EU_TOKEN_URL, payload=token_response())

    async with eu_provider() as provider:
        token = await provider.get_token()

    call, = mocked.requests[("POST", URL(EU_TOKEN_URL))]
    assert token == "1000.new.token"
    assert call.kwargs["data"] == {"grant_type": "refresh_token", "client_id": CLIENT_ID,
                                   "client_secret": CLIENT_SECRET,
                                   "refresh_token": REFRESH_TOKEN}
    assert call.kwargs["allow_redirects"] is False


async def test_missing_api_domain_keeps_previous(mocked: aioresponses) -> None:
    later = token_response("1000.second.token")
    del later["api_domain"]
    mocked.post(EU_TOKEN_URL, payload=token_response(api_domain="https://sandbox.zohoapis.eu"))
    mocked.post(EU_TOKEN_URL, payload=later)

    async with eu_provider() as provider:
        first = await provider.get_token()
        second = await provider.refresh(first)
        domain = provider.api_domain

    assert second == "1000.second.token"
    assert domain == "https://sandbox.zohoapis.eu"


async def test_proactive_refresh_on_clock(mocked: aioresponses) -> None:
    clock = FakeClock()
    mocked.post(EU_TOKEN_URL, payload=token_response("1000.first.token"))
    mocked.post(EU_TOKEN_URL, payload=token_response("1000.second.token"))

    async with eu_provider(clock=clock.time, refresh_margin=60) as provider:
        first = await provider.get_token()
        clock.now += 3539
        still_first = await provider.get_token()
        clock.now += 1
        second = await provider.get_token()

    assert (first, still_first, second) == ("1000.first.token", "1000.first.token",
                                            "1000.second.token")
    assert provider.refresh_count == 2


async def test_provider_transport_error(mocked: aioresponses) -> None:
    mocked.post(EU_TOKEN_URL, exception=aiohttp.ClientConnectionError("refused"))

    async with eu_provider() as provider:
        with pytest.raises(TransportError, match=r"accounts\.zoho\.eu/oauth/v2/token failed") \
                as caught:
            await provider.get_token()

    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectionError)


async def test_provider_timeout(mocked: aioresponses) -> None:
    mocked.post(EU_TOKEN_URL, exception=TimeoutError())

    async with eu_provider(request_timeout=2.5) as provider:
        with pytest.raises(TransportError, match=r"within 2\.5 s"):
            await provider.get_token()


async def test_provider_redirect_not_followed(mocked: aioresponses) -> None:
    mocked.post(EU_TOKEN_URL, status=302, headers={"Location": "https://elsewhere.test/"})

    async with eu_provider() as provider:
        with pytest.raises(UnexpectedResponseError):
            await provider.get_token()


async def test_provider_oversized_response(mocked: aioresponses) -> None:
    mocked.post(EU_TOKEN_URL, body=b"x" * (64 * 1024 + 1))

    async with eu_provider() as provider:
        with pytest.raises(UnexpectedResponseError, match="exceeds"):
            await provider.get_token()


async def test_closed_provider_raises() -> None:
    provider = eu_provider()
    await provider.aclose()

    with pytest.raises(RuntimeError, match="closed"):
        await provider.get_token()


async def test_replay_after_invalid_oauthtoken(mocked: aioresponses,
                                               make_client: Any) -> None:
    url = merge_url(JOB_ID)
    mocked.get(url, status=401, payload={"code": "INVALID_OAUTHTOKEN", "details": {},
                                         "message": "invalid oauth token", "status": "error"})
    mocked.get(url, payload={"merge": [{"job_id": JOB_ID, "status": "RUNNING"}]})
    provider = ScriptedProvider("1000.old.token", "1000.new.token")
    client = make_client(access_token=provider)

    job = await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)

    calls = mocked.requests[("GET", URL(url))]
    assert job.status is MergeStatus.RUNNING
    assert provider.refreshed == ["1000.old.token"]
    assert calls[1].kwargs["headers"]["Authorization"] == "Zoho-oauthtoken 1000.new.token"
    assert client.stats.retries == 0


async def test_replay_in_merge_envelope(mocked: aioresponses, make_client: Any) -> None:
    url = merge_url(JOB_ID)
    mocked.get(url, status=401, payload={"merge": [{"code": "INVALID_TOKEN", "details": {},
                                                    "message": "", "status": "error"}]})
    mocked.get(url, payload={"merge": [{"job_id": JOB_ID, "status": "COMPLETED"}]})
    provider = ScriptedProvider("1000.old.token", "1000.new.token")

    job = await make_client(access_token=provider).get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert job.status is MergeStatus.COMPLETED
    assert provider.refreshed == ["1000.old.token"]


async def test_scope_mismatch_not_replayed(mocked: aioresponses, make_client: Any) -> None:
    mocked.get(merge_url(JOB_ID), status=401,
               payload={"code": "OAUTH_SCOPE_MISMATCH", "details": {}, "message": "",
                        "status": "error"})
    provider = ScriptedProvider("1000.old.token", "1000.new.token")

    with pytest.raises(OAuthScopeMismatchError):
        await make_client(access_token=provider).get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert provider.refreshed == []
    assert request_count(mocked) == 1


async def test_provider_without_refresh(mocked: aioresponses, make_client: Any) -> None:
    mocked.get(merge_url(JOB_ID), status=401,
               payload={"code": "INVALID_TOKEN", "details": {}, "message": "",
                        "status": "error"})
    provider = ScriptedProvider("1000.old.token", None)

    with pytest.raises(InvalidTokenError):
        await make_client(access_token=provider).get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert request_count(mocked) == 1


async def test_mismatch_sends_nothing(mocked: aioresponses, make_client: Any) -> None:
    provider = ScriptedProvider("1000.eu.token", api_domain="https://www.zohoapis.eu")
    client = make_client(access_token=provider, api_domain="https://www.zohoapis.com")

    with pytest.raises(DataCentreMismatchError, match="EU data centre"):
        await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert request_count(mocked) == 0


async def test_sandbox_domain_same_centre(mocked: aioresponses, make_client: Any) -> None:
    sandbox = "https://sandbox.zohoapis.com"
    url = str(URL(sandbox).with_path(f"/crm/v7/{MODULE}/{RECORD_ID}/actions/merge")
              .with_query(job_id=JOB_ID))
    mocked.get(url, payload={"merge": [{"job_id": JOB_ID, "status": "RUNNING"}]})
    provider = ScriptedProvider("1000.us.token", api_domain="https://www.zohoapis.com")

    job = await make_client(access_token=provider, api_domain=sandbox).get_merge_status(
        MODULE, RECORD_ID, JOB_ID)

    assert job.status is MergeStatus.RUNNING


async def test_requests_follow_provider_domain(mocked: aioresponses, make_client: Any) -> None:
    eu_url = str(URL("https://www.zohoapis.eu").with_path(
        f"/crm/v7/{MODULE}/{RECORD_ID}/actions/merge").with_query(job_id=JOB_ID))
    mocked.get(eu_url, payload={"merge": [{"job_id": JOB_ID, "status": "RUNNING"}]})
    provider = ScriptedProvider("1000.eu.token", api_domain="https://www.zohoapis.eu")

    await make_client(access_token=provider).get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert ("GET", URL(eu_url)) in mocked.requests


async def test_domain_change_keeps_query(mocked: aioresponses, make_client: Any) -> None:
    urls = [URL(domain).with_path(f"/crm/v7/{MODULE}/{RECORD_ID}/actions/merge")
            .with_query(job_id=JOB_ID)
            for domain in ("https://www.zohoapis.eu", "https://www.zohoapis.com")]
    for url in urls:
        mocked.get(url, payload={"merge": [{"job_id": JOB_ID, "status": "RUNNING"}]})
    provider = ScriptedProvider("1000.eu.token", api_domain="https://www.zohoapis.eu")
    client = make_client(access_token=provider)

    await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)
    provider.api_domain = "https://www.zohoapis.com"
    await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert list(mocked.requests) == [("GET", url) for url in urls]


@pytest.mark.parametrize("token", ["", "bad token", "line\nbreak"])
async def test_provider_unusable_token(mocked: aioresponses, make_client: Any,
                                       token: str) -> None:
    client = make_client(access_token=ScriptedProvider(token))

    with pytest.raises(ValueError, match="ScriptedProvider returned an unusable access token"):
        await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert request_count(mocked) == 0
