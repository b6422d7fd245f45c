"""MergeClient against responses mocked with aioresponses: requests, errors, retries, checks."""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
import tenacity
from aioresponses import aioresponses
from conftest import (
    API_DOMAIN,
    JOB_ID,
    MODULE,
    OTHER_JOB_ID,
    RECORD_ID,
    TOKEN,
    ClientFactory,
    FakeClock,
    error_body,
    jobs_body,
    merge_url,
    request_count,
)
from yarl import URL

from zoho_merge_async import (
    ClientStats,
    InternalError,
    InvalidTokenError,
    MergeClient,
    MergeJob,
    MergeJobNotFoundError,
    MergeStatus,
    RateLimitError,
    RetryPolicy,
    TransportError,
    UnexpectedResponseError,
    ZohoAPIError,
    _client,
)
from zoho_merge_async._errors import ERROR_CLASSES
from zoho_merge_async._response import EXCERPT_CHARS, MAX_BODY_BYTES

HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"


def only_call(mocked: aioresponses) -> tuple[URL, dict[str, Any]]:
    """Return the URL and keyword arguments of the single request aioresponses recorded."""
    assert request_count(mocked) == 1
    ((_, url), calls), = mocked.requests.items()
    return url, calls[0].kwargs


# Requests


async def test_status_request_url(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))

    await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    url, _ = only_call(mocked)
    assert url.host == "www.zohoapis.com"
    assert url.path == f"/crm/v7/Leads/{RECORD_ID}/actions/merge"
    assert url.query_string == f"job_id={JOB_ID}"


async def test_status_request_headers(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))

    await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    _, kwargs = only_call(mocked)
    assert kwargs["headers"] == {"Authorization": f"Zoho-oauthtoken {TOKEN}"}
    assert kwargs["allow_redirects"] is False


async def test_status_returns_job(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "COMPLETED")))

    job = await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert job == MergeJob(job_id=JOB_ID, status=MergeStatus.COMPLETED)


async def test_int_ids_accepted(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))

    job = await make_client().get_merge_status(MODULE, int(RECORD_ID), int(JOB_ID))

    assert job.job_id == JOB_ID


async def test_jobs_request_has_no_query(mocked: aioresponses,
                                         make_client: ClientFactory) -> None:
    mocked.get(merge_url(), payload=jobs_body((JOB_ID, "RUNNING"), (OTHER_JOB_ID, "failed")))

    jobs = await make_client().get_merge_jobs(MODULE, RECORD_ID)

    url, kwargs = only_call(mocked)
    assert url.query_string == ""
    assert kwargs.get("params") is None
    assert jobs == [MergeJob(JOB_ID, MergeStatus.RUNNING),
                    MergeJob(OTHER_JOB_ID, MergeStatus.FAILURE)]


async def test_url_cache_bounded(mocked: aioresponses, make_client: ClientFactory,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_client, "MERGE_URL_CACHE_SIZE", 3)
    client = make_client()
    records = [f"{RECORD_ID[:-1]}{digit}" for digit in range(5)]

    for record in records + records[:2]:
        mocked.get(merge_url(JOB_ID, record_id=record), payload=jobs_body((JOB_ID, "RUNNING")))
        await client.get_merge_status(MODULE, record, JOB_ID)

    assert len(client._merge_urls) <= 3
    requested = [url.path.split("/")[4] for (_, url), calls in mocked.requests.items()
                 for _ in calls]
    assert sorted(requested) == sorted(records + records[:2])


async def test_cached_url_per_job(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))
    mocked.get(merge_url(OTHER_JOB_ID), payload=jobs_body((OTHER_JOB_ID, "COMPLETED")))
    mocked.get(merge_url(), payload=jobs_body((JOB_ID, "RUNNING")))
    client = make_client()

    first = await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)
    second = await client.get_merge_status(MODULE, RECORD_ID, OTHER_JOB_ID)
    listed = await client.get_merge_jobs(MODULE, RECORD_ID)

    assert first == MergeJob(JOB_ID, MergeStatus.RUNNING)
    assert second == MergeJob(OTHER_JOB_ID, MergeStatus.COMPLETED)
    assert listed == [MergeJob(JOB_ID, MergeStatus.RUNNING)]


@pytest.mark.parametrize("version", ["v6", "v8"])
async def test_api_version_in_path(mocked: aioresponses, make_client: ClientFactory,
                                   version: str) -> None:
    mocked.get(merge_url(JOB_ID, version=version), payload=jobs_body((JOB_ID, "RUNNING")))

    await make_client(api_version=version).get_merge_status(MODULE, RECORD_ID, JOB_ID)

    url, _ = only_call(mocked)
    assert url.path == f"/crm/{version}/Leads/{RECORD_ID}/actions/merge"


async def test_custom_module_in_path(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID, module="Custom_Module1"), payload=jobs_body((JOB_ID, "RUNNING")))

    await make_client().get_merge_status("Custom_Module1", RECORD_ID, JOB_ID)

    url, _ = only_call(mocked)
    assert url.path == f"/crm/v7/Custom_Module1/{RECORD_ID}/actions/merge"


# Zoho error codes

HTTP_STATUS_OF_CODE = {
    "AUTHENTICATION_FAILURE": 401,
    "INTERNAL_ERROR": 500,
    "INVALID_OAUTHTOKEN": 401,
    "INVALID_TOKEN": 401,
    "INVALID_URL_PATTERN": 404,
    "OAUTH_SCOPE_MISMATCH": 401,
    "TOO_MANY_REQUESTS": 429,
}
ERROR_DETAILS = {"api_name": "id", "json_path": "$.merge[0].data[0].id"}


@pytest.mark.parametrize("envelope", ["top", "merge", "data"])
@pytest.mark.parametrize(("code", "error_class"), sorted(ERROR_CLASSES.items()))
async def test_error_code_maps_to_class(
    mocked: aioresponses,
    make_client: ClientFactory,
    code: str,
    error_class: type[ZohoAPIError],
    envelope: str,
) -> None:
    http_status = HTTP_STATUS_OF_CODE.get(code, 400)
    body = error_body(code, envelope, message="zoho says no", details=ERROR_DETAILS)
    mocked.get(merge_url(JOB_ID), status=http_status, payload=body)
    client = make_client(retry=RetryPolicy(max_attempts=1))

    with pytest.raises(ZohoAPIError) as caught:
        await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert type(caught.value) is error_class
    assert caught.value.code == code
    assert caught.value.http_status == http_status
    assert caught.value.message == "zoho says no"
    assert caught.value.details == ERROR_DETAILS


async def test_unknown_code_plain_error(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), status=400, payload=error_body("BRAND_NEW_CODE", "merge"))

    with pytest.raises(ZohoAPIError) as caught:
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert type(caught.value) is ZohoAPIError
    assert caught.value.code == "BRAND_NEW_CODE"
    assert caught.value.http_status == 400


async def test_error_body_on_http_200(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), status=200, payload=error_body("INVALID_DATA"))

    with pytest.raises(ZohoAPIError) as caught:
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert caught.value.code == "INVALID_DATA"


async def test_error_message_has_hint(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), status=401, payload=error_body("INVALID_TOKEN"))

    with pytest.raises(InvalidTokenError, match="Get a new access token"):
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)


# Rate limit


async def rate_limit_error(mocked: aioresponses, client: MergeClient,
                           **answer: Any) -> RateLimitError:
    mocked.get(merge_url(JOB_ID), status=429, **answer)
    with pytest.raises(RateLimitError) as caught:
        await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)
    return caught.value


async def test_retry_after_seconds(mocked: aioresponses, make_client: ClientFactory) -> None:
    error = await rate_limit_error(mocked, make_client(),
                                   payload=error_body("TOO_MANY_REQUESTS"),
                                   headers={"Retry-After": "30"})

    assert error.retry_after == 30.0


async def test_retry_after_http_date(mocked: aioresponses, make_client: ClientFactory) -> None:
    moment = datetime.now(UTC) + timedelta(seconds=120)
    header = format_datetime(moment, usegmt=True)

    error = await rate_limit_error(mocked, make_client(),
                                   payload=error_body("TOO_MANY_REQUESTS"),
                                   headers={"Retry-After": header})

    assert error.retry_after is not None
    assert 110.0 <= error.retry_after <= 120.0


async def test_retry_after_past_date(mocked: aioresponses, make_client: ClientFactory) -> None:
    error = await rate_limit_error(mocked, make_client(),
                                   payload=error_body("TOO_MANY_REQUESTS"),
                                   headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})

    assert error.retry_after == 0.0


@pytest.mark.parametrize("header", ["soon", "1.5", "-5", ""])
async def test_retry_after_garbage_none(mocked: aioresponses, make_client: ClientFactory,
                                        header: str) -> None:
    error = await rate_limit_error(mocked, make_client(),
                                   payload=error_body("TOO_MANY_REQUESTS"),
                                   headers={"Retry-After": header})

    assert error.retry_after is None


async def test_retry_after_missing_none(mocked: aioresponses, make_client: ClientFactory) -> None:
    error = await rate_limit_error(mocked, make_client(), payload=error_body("TOO_MANY_REQUESTS"))

    assert error.retry_after is None


async def test_rate_limit_html_body(mocked: aioresponses, make_client: ClientFactory) -> None:
    error = await rate_limit_error(mocked, make_client(),
                                   body="<html><body>Too Many Requests</body></html>",
                                   content_type="text/html", headers={"Retry-After": "7"})

    assert error.code == "TOO_MANY_REQUESTS"
    assert error.http_status == 429
    assert error.retry_after == 7.0


# 204 and responses that are not Zoho's JSON


async def test_204_status_not_found(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), status=204)

    with pytest.raises(MergeJobNotFoundError) as caught:
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert caught.value.job_id == JOB_ID
    assert caught.value.master_record_id == RECORD_ID
    assert caught.value.module == MODULE


async def test_204_jobs_empty_list(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(), status=204)

    assert await make_client().get_merge_jobs(MODULE, RECORD_ID) == []


async def test_html_502_unexpected(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), status=502, body=HTML_502, content_type="text/html")

    with pytest.raises(UnexpectedResponseError) as caught:
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert caught.value.http_status == 502
    assert caught.value.body_excerpt == HTML_502
    assert "HTTP 502" in str(caught.value)


async def test_excerpt_cut_to_limit(mocked: aioresponses, make_client: ClientFactory) -> None:
    body = "<html>" + "x" * 1000 + "</html>"
    mocked.get(merge_url(JOB_ID), status=503, body=body, content_type="text/html")

    with pytest.raises(UnexpectedResponseError) as caught:
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert caught.value.body_excerpt == body[:EXCERPT_CHARS]


@pytest.mark.parametrize("http_status", [418, 500, 503])
async def test_unknown_http_status(mocked: aioresponses, make_client: ClientFactory,
                                   http_status: int) -> None:
    mocked.get(merge_url(JOB_ID), status=http_status, payload=jobs_body((JOB_ID, "RUNNING")))

    with pytest.raises(UnexpectedResponseError) as caught:
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert caught.value.http_status == http_status


async def test_unknown_merge_status(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "PAUSED")))

    with pytest.raises(UnexpectedResponseError, match="unknown merge status 'PAUSED'"):
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)


WRONG_SHAPES: list[Any] = [
    {"merge": []},
    {"merge": [{"job_id": JOB_ID}]},
    {"merge": [{"job_id": int(JOB_ID), "status": "RUNNING"}]},
    {"merge": [{"job_id": "24234880000005x", "status": "RUNNING"}]},
    {"merge": [{"job_id": OTHER_JOB_ID, "status": "RUNNING"}]},
    {"merge": [None]},
    {"merge": "RUNNING"},
    {"data": [{"job_id": JOB_ID, "status": "RUNNING"}]},
    [{"job_id": JOB_ID, "status": "RUNNING"}],
    None,
    "COMPLETED",
    {"status": "error"},
]


@pytest.mark.parametrize("payload", WRONG_SHAPES)
async def test_wrong_shape_unexpected(mocked: aioresponses, make_client: ClientFactory,
                                      payload: Any) -> None:
    mocked.get(merge_url(JOB_ID), payload=payload)

    with pytest.raises(UnexpectedResponseError) as caught:
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert caught.value.http_status == 200


async def test_other_job_id_named(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((OTHER_JOB_ID, "RUNNING")))

    with pytest.raises(UnexpectedResponseError) as caught:
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert OTHER_JOB_ID in caught.value.reason


@pytest.mark.parametrize("body", [b"", b"not json", b"{\"merge\": [", b"\xff\xfe{}"])
async def test_non_json_200(mocked: aioresponses, make_client: ClientFactory,
                            body: bytes) -> None:
    mocked.get(merge_url(JOB_ID), body=body)

    with pytest.raises(UnexpectedResponseError, match="not JSON"):
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)


async def test_oversized_body_rejected(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), body=b" " * (MAX_BODY_BYTES + 1))

    with pytest.raises(UnexpectedResponseError, match="exceeds the limit"):
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)


async def test_oversized_content_length(mocked: aioresponses,
                                        make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")),
               headers={"Content-Length": str(MAX_BODY_BYTES + 1)})

    with pytest.raises(UnexpectedResponseError, match=f"{MAX_BODY_BYTES + 1} bytes"):
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)


async def test_body_at_limit_accepted(mocked: aioresponses, make_client: ClientFactory) -> None:
    text = f'{{"merge": [{{"job_id": "{JOB_ID}", "status": "RUNNING"}}]}}'
    body = text.encode().ljust(MAX_BODY_BYTES, b" ")
    mocked.get(merge_url(JOB_ID), body=body)

    job = await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert job.status is MergeStatus.RUNNING


@pytest.mark.parametrize("http_status", [301, 302, 307, 308])
async def test_redirect_not_followed(mocked: aioresponses, make_client: ClientFactory,
                                     http_status: int) -> None:
    mocked.get(merge_url(JOB_ID), status=http_status,
               headers={"Location": "https://collector.example.net/steal"})

    with pytest.raises(UnexpectedResponseError) as caught:
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert "collector.example.net" in str(caught.value)
    assert caught.value.http_status == http_status
    assert request_count(mocked) == 1


# Retries of INTERNAL_ERROR


def add_internal_errors(mocked: aioresponses, count: int, envelope: str = "top") -> None:
    for _ in range(count):
        mocked.get(merge_url(JOB_ID), status=500, payload=error_body("INTERNAL_ERROR", envelope))


async def test_internal_error_retried(mocked: aioresponses, make_client: ClientFactory,
                                      clock: FakeClock) -> None:
    add_internal_errors(mocked, 2)
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "COMPLETED")))

    job = await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert job.status is MergeStatus.COMPLETED
    assert request_count(mocked) == 3
    assert clock.sleeps == [1.0, 2.0]


async def test_merge_envelope_retried(mocked: aioresponses, make_client: ClientFactory) -> None:
    add_internal_errors(mocked, 1, envelope="merge")
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "COMPLETED")))

    job = await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert job.status is MergeStatus.COMPLETED
    assert request_count(mocked) == 2


async def test_retries_exhausted_internal_error(mocked: aioresponses,
                                                make_client: ClientFactory,
                                                clock: FakeClock) -> None:
    add_internal_errors(mocked, 10)

    with pytest.raises(InternalError) as caught:
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert not isinstance(caught.value, tenacity.RetryError)
    assert caught.value.http_status == 500
    assert request_count(mocked) == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]


async def test_retry_delays_jittered(mocked: aioresponses, make_client: ClientFactory,
                                     clock: FakeClock) -> None:
    add_internal_errors(mocked, 10)
    client = make_client(random=lambda: 0.5)

    with pytest.raises(InternalError):
        await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert clock.sleeps == pytest.approx([0.9, 1.8, 3.6], rel=1e-12)


async def test_retry_delay_capped(mocked: aioresponses, make_client: ClientFactory,
                                  clock: FakeClock) -> None:
    add_internal_errors(mocked, 10)
    policy = RetryPolicy(initial_delay=1.0, multiplier=3.0, max_delay=5.0, jitter=0.0,
                         max_attempts=5)

    with pytest.raises(InternalError):
        await make_client(retry=policy).get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert clock.sleeps == [1.0, 3.0, 5.0, 5.0]
    assert request_count(mocked) == 5


async def test_single_attempt_no_retry(mocked: aioresponses, make_client: ClientFactory,
                                       clock: FakeClock) -> None:
    add_internal_errors(mocked, 10)

    with pytest.raises(InternalError):
        await make_client(retry=RetryPolicy(max_attempts=1)).get_merge_status(
            MODULE, RECORD_ID, JOB_ID)

    assert request_count(mocked) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("code", sorted(set(ERROR_CLASSES) - {"INTERNAL_ERROR"}))
async def test_other_codes_not_retried(mocked: aioresponses, make_client: ClientFactory,
                                       clock: FakeClock, code: str) -> None:
    mocked.get(merge_url(JOB_ID), status=HTTP_STATUS_OF_CODE.get(code, 400),
               payload=error_body(code), repeat=True)

    with pytest.raises(ZohoAPIError):
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert request_count(mocked) == 1
    assert clock.sleeps == []


async def test_html_500_not_retried(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), status=500, body=HTML_502, content_type="text/html",
               repeat=True)

    with pytest.raises(UnexpectedResponseError):
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert request_count(mocked) == 1


async def test_transport_error_not_retried(mocked: aioresponses,
                                           make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), exception=aiohttp.ClientConnectionError("reset"), repeat=True)

    with pytest.raises(TransportError):
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert request_count(mocked) == 1


async def test_stats_count_retries(mocked: aioresponses, make_client: ClientFactory) -> None:
    client = make_client()
    add_internal_errors(mocked, 2)
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))
    mocked.get(merge_url(), payload=jobs_body((JOB_ID, "RUNNING")))

    assert client.stats == ClientStats(requests_sent=0, retries=0)
    await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)
    await client.get_merge_jobs(MODULE, RECORD_ID)

    assert client.stats == ClientStats(requests_sent=4, retries=2)


# Transport failures and cancellation


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ClientConnectionError("connection refused"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("truncated body"),
    ],
)
async def test_client_error_transport_error(mocked: aioresponses, make_client: ClientFactory,
                                            error: aiohttp.ClientError) -> None:
    mocked.get(merge_url(JOB_ID), exception=error)

    with pytest.raises(TransportError) as caught:
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert caught.value.__cause__ is error
    assert "www.zohoapis.com" in str(caught.value)


async def test_timeout_transport_error(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), timeout=True)

    with pytest.raises(TransportError, match="request timeout") as caught:
        await make_client(request_timeout=2.5).get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert isinstance(caught.value.__cause__, TimeoutError)
    assert "2.5 s" in str(caught.value)


async def test_request_timeout_passed(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))

    await make_client(request_timeout=4.0).get_merge_status(MODULE, RECORD_ID, JOB_ID)

    _, kwargs = only_call(mocked)
    assert kwargs["timeout"].total == 4.0


async def test_cancel_during_request(mocked: aioresponses, make_client: ClientFactory) -> None:
    started = asyncio.Event()

    async def hang(url: URL, **kwargs: Any) -> None:
        started.set()
        await asyncio.sleep(3600)

    mocked.get(merge_url(JOB_ID), callback=hang, repeat=True)
    client = make_client()
    task = asyncio.create_task(client.get_merge_status(MODULE, RECORD_ID, JOB_ID))
    await started.wait()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(5):
        await asyncio.sleep(0)

    assert request_count(mocked) == 1


async def test_cancel_during_retry_sleep(mocked: aioresponses, make_client: ClientFactory,
                                        clock: FakeClock) -> None:
    add_internal_errors(mocked, 10)
    clock.hold_sleeps()
    task = asyncio.create_task(make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID))
    await clock.sleeping.wait()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(5):
        await asyncio.sleep(0)

    assert request_count(mocked) == 1


# Argument checks: nothing is sent for an invalid argument

BAD_MODULES: list[object] = ["Le/ads", "../x", "", "Leads?x=1", "L\u00e9ads", "Leads\n",
                             "1Leads", "Leads#x", None, 7]
BAD_IDS: list[object] = ["12a", "-1", 0, -5, True, 1.5, "\uff11\uff12", "1/2", "%2F", "",
                         " 12", "12\n", None]


@pytest.mark.parametrize("module", BAD_MODULES)
async def test_bad_module_rejected(mocked: aioresponses, make_client: ClientFactory,
                                   module: Any) -> None:
    with pytest.raises(ValueError, match="invalid module") as caught:
        await make_client().get_merge_status(module, RECORD_ID, JOB_ID)

    assert repr(module) in str(caught.value)
    assert request_count(mocked) == 0


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_bad_record_id_rejected(mocked: aioresponses, make_client: ClientFactory,
                                      bad_id: Any) -> None:
    with pytest.raises(ValueError, match="invalid master_record_id") as caught:
        await make_client().get_merge_status(MODULE, bad_id, JOB_ID)

    assert repr(bad_id) in str(caught.value)
    assert request_count(mocked) == 0


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_bad_job_id_rejected(mocked: aioresponses, make_client: ClientFactory,
                                   bad_id: Any) -> None:
    with pytest.raises(ValueError, match="invalid job_id") as caught:
        await make_client().get_merge_status(MODULE, RECORD_ID, bad_id)

    assert repr(bad_id) in str(caught.value)
    assert request_count(mocked) == 0


@pytest.mark.parametrize("module", BAD_MODULES)
async def test_jobs_bad_module_rejected(mocked: aioresponses, make_client: ClientFactory,
                                        module: Any) -> None:
    with pytest.raises(ValueError, match="invalid module"):
        await make_client().get_merge_jobs(module, RECORD_ID)

    assert request_count(mocked) == 0


@pytest.mark.parametrize("token", ["1000.abc def", "1000.abc\ndef", "1000.abc\r\nX-Evil: 1",
                                   "Zoho-oauthtoken 1000.abcdef", "1000.abc\u00e9def"])
def test_bad_token_not_in_message(token: str) -> None:
    with pytest.raises(ValueError, match="access_token") as caught:
        MergeClient(token)

    assert token not in str(caught.value)
    assert "1000.abc" not in str(caught.value)


@pytest.mark.parametrize("token", ["", None])
def test_missing_token_rejected(token: Any) -> None:
    with pytest.raises(ValueError, match="access_token is missing"):
        MergeClient(token)


@pytest.mark.parametrize(
    "domain",
    [
        "http://www.zohoapis.com",
        "http://10.0.0.5",
        "https://www.zohoapis.com/crm",
        "https://www.zohoapis.com?x=1",
        "https://www.zohoapis.com#top",
        "https://user:pw@www.zohoapis.com",
        "ftp://www.zohoapis.com",
        "www.zohoapis.com",
        "",
    ],
)
def test_bad_api_domain_rejected(domain: str) -> None:
    with pytest.raises(ValueError, match="invalid api_domain"):
        MergeClient(TOKEN, api_domain=domain)


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("http://127.0.0.1", "http://127.0.0.1"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost", "http://localhost"),
        ("http://[::1]:9000", "http://[::1]:9000"),
        ("https://www.zohoapis.eu/", "https://www.zohoapis.eu"),
    ],
)
def test_api_domain_accepted(domain: str, expected: str) -> None:
    assert MergeClient(TOKEN, api_domain=domain).api_domain == expected


@pytest.mark.parametrize("version", ["v5", "V7", "7", "v9", None])
def test_bad_api_version_rejected(version: Any) -> None:
    with pytest.raises(ValueError, match="invalid api_version"):
        MergeClient(TOKEN, api_version=version)


@pytest.mark.parametrize("timeout", [0, -1.0, math.nan, math.inf, True, "30"])
def test_bad_request_timeout_rejected(timeout: Any) -> None:
    with pytest.raises(ValueError, match="invalid request_timeout"):
        MergeClient(TOKEN, request_timeout=timeout)


# Client life cycle


async def test_closed_client_raises(mocked: aioresponses, make_client: ClientFactory) -> None:
    client = make_client()
    await client.aclose()

    with pytest.raises(RuntimeError, match="closed"):
        await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)
    assert request_count(mocked) == 0


async def test_closed_client_context_raises() -> None:
    client = MergeClient(TOKEN)
    await client.aclose()

    with pytest.raises(RuntimeError, match="closed"):
        async with client:
            pass


async def test_aclose_twice_ok(mocked: aioresponses) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))
    client = MergeClient(TOKEN)
    await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)

    await client.aclose()
    await client.aclose()

    assert client.closed


async def test_context_manager_closes(mocked: aioresponses) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))

    async with MergeClient(TOKEN) as client:
        await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert client.closed


def test_client_built_outside_loop() -> None:
    client = MergeClient(TOKEN)

    async def fetch() -> MergeJob:
        with aioresponses() as mock:
            mock.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))
            try:
                return await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)
            finally:
                await client.aclose()

    job = asyncio.run(fetch())

    assert job.status is MergeStatus.RUNNING


async def test_borrowed_session_left_open(mocked: aioresponses) -> None:
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))

    async with aiohttp.ClientSession() as session:
        async with MergeClient(TOKEN, session=session) as client:
            await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)

        assert client.closed
        assert not session.closed


async def test_borrowed_closed_session(mocked: aioresponses) -> None:
    session = aiohttp.ClientSession()
    await session.close()
    client = MergeClient(TOKEN, session=session)

    with pytest.raises(RuntimeError, match="ClientSession passed to MergeClient is closed"):
        await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert request_count(mocked) == 0
    await client.aclose()


# Secrets stay out of reprs, messages and logs


async def collect_errors(mocked: aioresponses, client: MergeClient) -> list[BaseException]:
    mocked.get(merge_url(JOB_ID), status=401, payload=error_body("INVALID_TOKEN"))
    mocked.get(merge_url(JOB_ID), status=429, payload=error_body("TOO_MANY_REQUESTS"))
    mocked.get(merge_url(JOB_ID), status=502, body=HTML_502, content_type="text/html")
    mocked.get(merge_url(JOB_ID), exception=aiohttp.ClientConnectionError("refused"))
    mocked.get(merge_url(JOB_ID), timeout=True)
    mocked.get(merge_url(JOB_ID), status=204)
    mocked.get(merge_url(JOB_ID), status=302, headers={"Location": "https://elsewhere.example"})
    errors: list[BaseException] = []
    for _ in range(7):
        try:
            await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)
        except Exception as error:
            errors.append(error)
            if error.__cause__ is not None:
                errors.append(error.__cause__)
    return errors


async def test_errors_hide_token(mocked: aioresponses, make_client: ClientFactory) -> None:
    errors = await collect_errors(mocked, make_client())

    assert len(errors) == 9
    for error in errors:
        assert TOKEN not in repr(error)
        assert TOKEN not in str(error)


async def test_client_repr_hides_token(make_client: ClientFactory) -> None:
    client = make_client()

    assert TOKEN not in repr(client)
    assert API_DOMAIN in repr(client)


async def test_logs_hide_token(mocked: aioresponses, make_client: ClientFactory,
                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    mocked.get(merge_url(), payload=jobs_body((JOB_ID, "SCHEDULED")))
    add_internal_errors(mocked, 2)
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "RUNNING")))
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, "COMPLETED")))

    await make_client().wait_for_merge(MODULE, RECORD_ID)

    package_records = [r for r in caplog.records if r.name.startswith("zoho_merge_async")]
    assert len(package_records) >= 4
    assert TOKEN not in caplog.text
    assert "Zoho-oauthtoken" not in caplog.text
    assert "job_id=" not in caplog.text
