"""Hostile input: arbitrary responses, malformed HTTP, injected path characters and plain http.

Property tests feed arbitrary status codes, headers and bodies to the
response parser and to whole waits: the only exceptions that may escape are
the SDK's `ZohoError` subclasses, and every wait ends with a final job or a
`ZohoError`. Raw-socket tests send responses that are not valid HTTP.
Table tests check that values able to change a URL are rejected before
anything is sent, and that the token travels only in the Authorization header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import unittest.mock
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Literal

import pytest
from aioresponses import CallbackResult, aioresponses
from conftest import JOB_ID, MODULE, OTHER_JOB_ID, RECORD_ID, TOKEN, FakeClock, request_count
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rawserver import Connection, RawServer
from yarl import URL

from zoho_merge_async import (
    MergeClient,
    MergeJob,
    MergeTarget,
    PollPolicy,
    TransportError,
    UnexpectedResponseError,
    ZohoError,
    wait_for_merge,
    wait_many,
)
from zoho_merge_async._response import MAX_RETRY_AFTER, parse_merge_response, parse_retry_after
from zoho_merge_async.testing import FakeZohoServer

# Generated responses

STATUS_WORDS = ["SCHEDULED", "RUNNING", "COMPLETED", "FAILURE", "running", "completed",
                "failed", "PAUSED", "", "runn\u0131ng"]
ERROR_CODES = ["INTERNAL_ERROR", "INVALID_TOKEN", "INVALID_DATA", "TOO_MANY_REQUESTS",
               "NOT_ALLOWED", "BRAND_NEW_CODE"]
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12)
JOB_IDS = st.sampled_from([JOB_ID, OTHER_JOB_ID, "", "12a", "\uff11\uff12"]) | JSON_SCALARS
JOB_ITEMS = st.fixed_dictionaries(
    {}, optional={"job_id": JOB_IDS, "status": st.sampled_from(STATUS_WORDS) | JSON_SCALARS})
ERROR_ITEMS = st.fixed_dictionaries(
    {"code": st.sampled_from(ERROR_CODES) | JSON_SCALARS,
     "status": st.sampled_from(["error", "success"])},
    optional={"message": JSON_VALUES, "details": JSON_VALUES})
PAYLOADS = (
    st.fixed_dictionaries({"merge": st.lists(JOB_ITEMS | ERROR_ITEMS, max_size=3)})
    | st.fixed_dictionaries({"data": st.lists(ERROR_ITEMS, max_size=2)})
    | ERROR_ITEMS
    | JSON_VALUES
)
BODIES = (
    PAYLOADS.map(lambda payload: json.dumps(payload).encode())
    | st.binary(max_size=200)
    | PAYLOADS.map(lambda payload: json.dumps(payload).encode()[:-2])
    | PAYLOADS.map(lambda payload: json.dumps(payload).encode("utf-16"))
)
# Bodies close to the usual `{"merge": [job]}`, which the parser reads on a shorter path.
ONE_JOB_ITEMS = st.fixed_dictionaries(
    {"job_id": st.sampled_from([JOB_ID, JOB_ID, JOB_ID, OTHER_JOB_ID, int(JOB_ID)]),
     "status": st.sampled_from(STATUS_WORDS) | JSON_VALUES},
    optional={"code": st.sampled_from(["INTERNAL_ERROR", None])})
TOP_LEVEL_EXTRAS = st.sampled_from([
    {}, {"status": "error", "code": "INTERNAL_ERROR"},
    {"data": [{"status": "error", "code": "INVALID_DATA"}]}, {"info": {}},
])
ONE_JOB_BODIES = st.builds(
    lambda items, extra, encoding: json.dumps({"merge": items, **extra}).encode(encoding),
    st.lists(ONE_JOB_ITEMS, min_size=1, max_size=2)
    | st.lists(JOB_ITEMS | ERROR_ITEMS, min_size=1, max_size=2),
    TOP_LEVEL_EXTRAS, st.sampled_from(["utf-8", "utf-8", "utf-16"]))
HTTP_STATUSES = st.sampled_from([200, 204, 301, 302, 307, 401, 404, 429, 500, 502, 503, 504]) \
    | st.integers(min_value=100, max_value=599)
HEADER_VALUES = (st.text(max_size=40)
                 | st.integers(min_value=-10, max_value=10**12).map(str)
                 | st.sampled_from(["Wed, 21 Oct 2015 07:28:00 GMT",
                                    "Fri, 31 Dec 9999 23:59:59 GMT", "https://evil.test/x",
                                    "//evil.test", "http://[", "http://xn--/"]))
HEADERS = st.dictionaries(st.sampled_from(["Retry-After", "Location", "X-Other"]),
                          HEADER_VALUES, max_size=3)
RESPONSES = st.tuples(HTTP_STATUSES, HEADERS, BODIES)


def status_response(status: str) -> tuple[int, dict[str, str], bytes]:
    return 200, {}, json.dumps({"merge": [{"job_id": JOB_ID, "status": status}]}).encode()


def error_response(code: str, http_status: int,
                 headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    body = {"code": code, "details": {}, "message": "", "status": "error"}
    return http_status, headers, json.dumps(body).encode()


# Responses that a real wait receives, mixed with arbitrary ones, so that waits get past
# the first poll.
WAIT_RESPONSES = (
    st.sampled_from(["SCHEDULED", "RUNNING", "COMPLETED", "failed"]).map(status_response)
    | st.builds(error_response, st.just("INTERNAL_ERROR"), st.just(500), HEADERS)
    | st.builds(error_response, st.just("TOO_MANY_REQUESTS"), st.just(429), HEADERS)
    | RESPONSES
)


# Property: the parser raises only ZohoError


@settings(max_examples=1000, deadline=None)
@given(response=RESPONSES, job_id=st.sampled_from([JOB_ID, None]))
def test_parser_raises_only_typed(response: tuple[int, dict[str, str], bytes],
                                  job_id: str | None) -> None:
    http_status, headers, body = response

    try:
        jobs = parse_merge_response(http_status, headers, body, module=MODULE,
                                    master_record_id=RECORD_ID, job_id=job_id)
    except ZohoError:
        return

    assert 200 <= http_status < 300
    if job_id is not None:
        assert [job.job_id for job in jobs] == [job_id]


def parse_outcome(http_status: int, headers: dict[str, str], body: bytes) -> object:
    """Return the jobs parsed from a response, or the type and text of the error raised."""
    try:
        return parse_merge_response(http_status, headers, body, module=MODULE,
                                    master_record_id=RECORD_ID, job_id=JOB_ID)
    except ZohoError as error:
        return type(error), str(error)


def assert_short_path_agrees(body: bytes) -> None:
    """Assert that a 200 response parses as it does with the short path turned off."""
    with unittest.mock.patch("zoho_merge_async._response._read_single_job",
                             return_value=None) as short_path:
        expected = parse_outcome(200, {}, body)

    assert short_path.call_count == 1
    assert parse_outcome(200, {}, body) == expected


@settings(max_examples=1000, deadline=None)
@given(body=ONE_JOB_BODIES | ONE_JOB_BODIES | BODIES)
def test_short_path_matches_general(body: bytes) -> None:
    assert_short_path_agrees(body)


@pytest.mark.parametrize("payload", [
    {"merge": [{"job_id": JOB_ID, "status": "RUNNING"}], "status": "error",
     "code": "INTERNAL_ERROR"},
    {"merge": [{"job_id": JOB_ID, "status": "RUNNING"}],
     "data": [{"status": "error", "code": "INVALID_DATA"}]},
    {"merge": [{"job_id": JOB_ID, "status": "RUNNING"},
               {"job_id": OTHER_JOB_ID, "status": "error", "code": "INTERNAL_ERROR"}]},
    {"merge": [{"job_id": OTHER_JOB_ID, "status": "RUNNING"}]},
    {"merge": [{"job_id": int(JOB_ID), "status": "RUNNING"}]},
    {"merge": [{"job_id": JOB_ID, "status": "runn\u0131ng"}]},
    {"merge": [{"job_id": JOB_ID, "status": "failed"}]},
    {"merge": [{"job_id": JOB_ID, "status": []}]},
    {"merge": [{"job_id": JOB_ID, "status": {"value": "RUNNING"}}]},
])
def test_short_path_edge_cases(payload: dict[str, Any]) -> None:
    assert_short_path_agrees(json.dumps(payload).encode())


def test_short_path_utf16_not_json() -> None:
    body = json.dumps({"merge": [{"job_id": JOB_ID, "status": "RUNNING"}]}).encode("utf-16")

    assert_short_path_agrees(body)
    with pytest.raises(UnexpectedResponseError, match="not JSON"):
        parse_merge_response(200, {}, body, module=MODULE, master_record_id=RECORD_ID,
                             job_id=JOB_ID)


@settings(max_examples=300, deadline=None)
@given(value=HEADER_VALUES)
def test_retry_after_bounded(value: str) -> None:
    seconds = parse_retry_after(value)

    if seconds is not None:
        assert 0.0 <= seconds <= MAX_RETRY_AFTER


# Property: a wait fed arbitrary responses always ends

REAL_TIME_LIMIT = 10.0
"""Real seconds one generated wait may take; the fake clock makes a 600 s wait instant."""


async def run_wait(responses: list[tuple[int, dict[str, str], bytes]], job_id: str | None,
                   rate_limit: Literal["raise", "slow_down"]) -> MergeJob | ZohoError:
    """Wait on a client whose requests get `responses` in turn, the last one repeating."""
    clock = FakeClock()
    sent = 0

    def reply(url: URL, **kwargs: Any) -> CallbackResult:
        nonlocal sent
        http_status, headers, body = responses[min(sent, len(responses) - 1)]
        sent += 1
        return CallbackResult(status=http_status, headers=headers, body=body)

    with aioresponses() as mocked:
        mocked.get(re.compile(r"https://www\.zohoapis\.com/.*"), callback=reply, repeat=True)
        client = MergeClient(TOKEN, clock=clock.time, sleep=clock.sleep, random=lambda: 0.5,
                             rate_limit=rate_limit)
        try:
            async with asyncio.timeout(REAL_TIME_LIMIT):
                return await wait_for_merge(client, MODULE, RECORD_ID, job_id)
        except ZohoError as error:
            return error
        finally:
            await client.aclose()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses=st.lists(WAIT_RESPONSES, min_size=1, max_size=6),
       job_id=st.sampled_from([JOB_ID, None]),
       rate_limit=st.sampled_from(["raise", "slow_down"]))
def test_wait_always_ends(responses: list[tuple[int, dict[str, str], bytes]],
                          job_id: str | None, rate_limit: Literal["raise", "slow_down"]) -> None:
    outcome = asyncio.run(run_wait(responses, job_id, rate_limit))

    if isinstance(outcome, MergeJob):
        assert outcome.status.is_terminal
    else:
        assert isinstance(outcome, ZohoError)


# Responses that are not valid HTTP, over a raw socket


def gzip_of_zeros(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1024 * 1024)
    chunks = [compressor.compress(block) for _ in range(size // len(block))]
    return b"".join(chunks) + compressor.flush()


def gzip_response(size: int) -> bytes:
    body = gzip_of_zeros(size)
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    return head + body


MALFORMED_RESPONSES: dict[str, tuple[bytes, type[ZohoError]]] = {
    "bad-content-length": (b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}", TransportError),
    "bad-status-line": (b"HTTP/1.1 abc OK\r\nContent-Length: 2\r\n\r\n{}", TransportError),
    "not-http": (b"SSH-2.0-OpenSSH_9.0\r\n", TransportError),
    "long-header": (b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 20000 + b"\r\n\r\n", TransportError),
    "nul-in-header": (b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\n{}",
                      TransportError),
    "bad-chunk-size": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n",
                       TransportError),
    "length-and-chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                           b"Content-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n", TransportError),
    "status-999": (b"HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\n{}", UnexpectedResponseError),
    # aiohttp inflates a gzip body in pieces of at most 32 MiB (aiohttp 3.13), and the SDK
    # stops at MAX_BODY_BYTES of inflated data.
    "gzip-2MiB": (gzip_response(2 * 1024 * 1024), UnexpectedResponseError),
    "gzip-64MiB": (gzip_response(64 * 1024 * 1024), TransportError),
}


@pytest.mark.parametrize(("response", "error_class"), list(MALFORMED_RESPONSES.values()),
                         ids=list(MALFORMED_RESPONSES))
async def test_malformed_http_typed(response: bytes, error_class: type[ZohoError]) -> None:
    async def behave(connection: Connection) -> None:
        await connection.read_request()
        await connection.write(response)
        connection.close()

    async with RawServer(behave) as raw:
        client = MergeClient(TOKEN, api_domain=raw.api_domain, request_timeout=5.0)
        async with client:
            with pytest.raises(ZohoError) as caught:
                await client.get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert type(caught.value) is error_class
    assert len(raw.requests) == 1


# Values that could change the URL are rejected before any request

INJECTED = ["/", "..", "?", "#", "%2F", " ", "\n", "\r\n", "\u00e9", "\u0661", "\uff11", "\t",
            "\x00"]
BAD_MODULES = ["..", *(f"Leads{text}x" for text in INJECTED), "Leads/../Contacts"]
BAD_IDS = ["..", *(f"12{text}3" for text in INJECTED), "\u0661\u0662\u0663",
           "\uff11\uff12\uff13", "1" * 31]

Call = Callable[[MergeClient, str, str, str], Coroutine[Any, Any, Any]]


async def first_outcome(client: MergeClient, module: str, record: str, job: str) -> Any:
    async with contextlib.aclosing(wait_many(client, [(module, record, job)])) as outcomes:
        async for outcome in outcomes:
            return outcome
    return None


CALLS: dict[str, Call] = {
    "get_merge_status": lambda client, module, record, job: client.get_merge_status(
        module, record, job),
    "get_merge_jobs": lambda client, module, record, job: client.get_merge_jobs(module, record),
    "wait_for_merge": lambda client, module, record, job: wait_for_merge(
        client, module, record, job),
    "wait_many": first_outcome,
    "merge_records": lambda client, module, record, job: client.merge_records(
        module, record, [job]),
}


@pytest.fixture
async def offline_client() -> AsyncIterator[tuple[MergeClient, aioresponses]]:
    """A client whose every request would be recorded by aioresponses, and refused."""
    with aioresponses() as mocked:
        client = MergeClient(TOKEN, poll=PollPolicy(timeout=1.0))
        yield client, mocked
        await client.aclose()


@pytest.mark.parametrize("module", BAD_MODULES)
@pytest.mark.parametrize("call", list(CALLS.values()), ids=list(CALLS))
async def test_bad_module_sends_nothing(offline_client: tuple[MergeClient, aioresponses],
                                        call: Call, module: str) -> None:
    client, mocked = offline_client

    with pytest.raises(ValueError, match="invalid module") as caught:
        await call(client, module, RECORD_ID, JOB_ID)

    assert repr(module) in str(caught.value)
    assert request_count(mocked) == 0


@pytest.mark.parametrize("record_id", BAD_IDS)
@pytest.mark.parametrize("call", list(CALLS.values()), ids=list(CALLS))
async def test_bad_record_id_sends_nothing(offline_client: tuple[MergeClient, aioresponses],
                                           call: Call, record_id: str) -> None:
    client, mocked = offline_client

    with pytest.raises(ValueError, match="invalid master_record_id") as caught:
        await call(client, MODULE, record_id, JOB_ID)

    assert repr(record_id) in str(caught.value)
    assert request_count(mocked) == 0


JOB_ID_CALLS = {name: CALLS[name]
                for name in ("get_merge_status", "wait_for_merge", "wait_many", "merge_records")}


@pytest.mark.parametrize("job_id", BAD_IDS)
@pytest.mark.parametrize("call", list(JOB_ID_CALLS.values()), ids=list(JOB_ID_CALLS))
async def test_bad_job_id_sends_nothing(offline_client: tuple[MergeClient, aioresponses],
                                        call: Call, job_id: str) -> None:
    client, mocked = offline_client

    # merge_records takes the third argument as a child record id.
    with pytest.raises(ValueError, match=r"invalid (job_id|child record id) ") as caught:
        await call(client, MODULE, RECORD_ID, job_id)

    assert repr(job_id) in str(caught.value)
    assert request_count(mocked) == 0


@given(module=st.text(max_size=30))
def test_module_pattern_property(module: str) -> None:
    valid = re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,99}", module) is not None

    try:
        MergeTarget(module, RECORD_ID, JOB_ID)
    except ValueError:
        assert not valid
    else:
        assert valid


@given(record_id=st.text(max_size=35))
def test_id_pattern_property(record_id: str) -> None:
    # One to 30 ASCII digits, not all zeros: Zoho ids are positive.
    valid = re.fullmatch(r"[0-9]{1,30}", record_id) is not None and record_id.strip("0") != ""

    try:
        MergeTarget(MODULE, record_id, JOB_ID)
    except ValueError:
        assert not valid
    else:
        assert valid


# Plain http only to loopback, and the token only in the Authorization header

NON_LOOPBACK_HTTP = [
    "http://www.zohoapis.com",
    "http://10.0.0.5",
    "http://169.254.169.254",
    "http://0.0.0.0",
    "http://127.0.0.1.nip.io",
    "http://localhost.evil.test",
    "http://2130706433",
    "http://127.1",
    "http://127.0.0.1@evil.test",
    "http://evil.test#@127.0.0.1",
    "http://evil.test?@127.0.0.1",
    "HTTP://www.zohoapis.com",
]
LOOPBACK_HTTP = ["http://127.0.0.1:8080", "http://127.5.6.7", "http://localhost:9000",
                 "http://[::1]:9000"]


@pytest.mark.parametrize("domain", NON_LOOPBACK_HTTP)
def test_plain_http_elsewhere_rejected(domain: str) -> None:
    with pytest.raises(ValueError, match="invalid api_domain"):
        MergeClient(TOKEN, api_domain=domain)


@pytest.mark.parametrize("domain", LOOPBACK_HTTP)
def test_plain_http_loopback_accepted(domain: str) -> None:
    assert MergeClient(TOKEN, api_domain=domain).api_domain == domain


async def test_token_only_in_header() -> None:
    async with FakeZohoServer(access_tokens=(TOKEN,)) as server:
        job_id = server.add_job(MODULE, RECORD_ID, ["RUNNING", "RUNNING", "COMPLETED"])
        policy = PollPolicy(initial_delay=0.01, multiplier=1.0, max_delay=0.01, jitter=0.0,
                            min_interval=0.0)
        async with MergeClient(TOKEN, api_domain=server.api_domain, poll=policy) as client:
            await client.get_merge_jobs(MODULE, RECORD_ID)
            await wait_for_merge(client, MODULE, RECORD_ID, job_id)

    assert len(server.requests) == 3
    for request in server.requests:
        assert TOKEN not in request.path
        assert TOKEN not in request.query_string
        assert request.headers["authorization"] == f"Zoho-oauthtoken {TOKEN}"
        assert [name for name, value in request.headers.items() if TOKEN in value] == [
            "authorization"]
