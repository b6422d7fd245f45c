"""Tests for `zoho_merge_async.testing.FakeZohoServer` over real TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from zoho_merge_async.testing import (
    FakeZohoServer,
    RawReply,
    StatusReply,
    ZohoErrorReply,
)

TOKEN = "test-token"
MASTER = "2378988000000509963"
OTHER_MASTER = "2378988000000509970"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@pytest.fixture
async def server() -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=(TOKEN,)) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def merge_url(
    server: FakeZohoServer, module: str = "Leads", record_id: str = MASTER, version: str = "v8"
) -> str:
    return f"{server.api_domain}/crm/{version}/{module}/{record_id}/actions/merge"


async def send(
    session: aiohttp.ClientSession,
    url: str,
    *,
    method: str = "GET",
    token: str | None = TOKEN,
    params: Mapping[str, str] | None = None,
) -> Reply:
    headers = {} if token is None else {"Authorization": f"Zoho-oauthtoken {token}"}
    async with session.request(
        method, url, headers=headers, params=params, allow_redirects=False
    ) as response:
        return Reply(response.status, dict(response.headers), await response.read())


async def poll_status(
    session: aiohttp.ClientSession, server: FakeZohoServer, job_id: str
) -> object:
    reply = await send(session, merge_url(server), params={"job_id": job_id})
    return reply.json()["merge"][0]["status"]


# Step sequences


async def test_status_sequence_last_repeats(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    job_id = server.add_job("Leads", MASTER, ["SCHEDULED", "RUNNING", "COMPLETED"])

    seen = [await poll_status(session, server, job_id) for _ in range(5)]

    assert seen == ["SCHEDULED", "RUNNING", "COMPLETED", "COMPLETED", "COMPLETED"]


async def test_status_reply_body_shape(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    job_id = server.add_job("Leads", MASTER, ["COMPLETED"])

    reply = await send(session, merge_url(server), params={"job_id": job_id})

    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json() == {"merge": [{"job_id": job_id, "status": "COMPLETED"}]}


async def test_statuses_sent_verbatim(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    job_id = server.add_job("Leads", MASTER, ["running", "failed", StatusReply("PAUSED")])

    seen = [await poll_status(session, server, job_id) for _ in range(3)]

    assert seen == ["running", "failed", "PAUSED"]


async def test_explicit_job_id_used(server: FakeZohoServer, session: aiohttp.ClientSession) -> None:
    job_id = server.add_job("Leads", MASTER, ["RUNNING"], job_id="2423488000000513988")

    assert job_id == "2423488000000513988"
    assert await poll_status(session, server, job_id) == "RUNNING"


def test_generated_job_ids_unique() -> None:
    fake = FakeZohoServer()

    job_ids = [fake.add_job("Leads", MASTER, ["RUNNING"]) for _ in range(3)]

    assert len(set(job_ids)) == 3
    for job_id in job_ids:
        assert len(job_id) == 19
        assert job_id.isdigit()


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
async def test_supported_versions_accepted(
    server: FakeZohoServer, session: aiohttp.ClientSession, version: str
) -> None:
    job_id = server.add_job("Leads", MASTER, ["RUNNING"])

    reply = await send(session, merge_url(server, version=version), params={"job_id": job_id})

    assert reply.status == 200


# Error and raw steps


async def test_error_step_top_envelope(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    job_id = server.add_job("Leads", MASTER, ["RUNNING", ZohoErrorReply("INTERNAL_ERROR"), "DONE"])

    first = await send(session, merge_url(server), params={"job_id": job_id})
    second = await send(session, merge_url(server), params={"job_id": job_id})
    third = await send(session, merge_url(server), params={"job_id": job_id})

    assert first.status == 200
    assert second.status == 500
    assert second.json() == {
        "code": "INTERNAL_ERROR",
        "details": {},
        "message": "Internal Server Error",
        "status": "error",
    }
    assert third.json()["merge"][0]["status"] == "DONE"


async def test_error_step_merge_envelope(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    error = ZohoErrorReply("NOT_ALLOWED", details={"api_name": "id"}, envelope="merge")
    job_id = server.add_job("Leads", MASTER, [error])

    reply = await send(session, merge_url(server), params={"job_id": job_id})

    assert reply.status == 400
    assert reply.json() == {
        "merge": [
            {
                "code": "NOT_ALLOWED",
                "details": {"api_name": "id"},
                "message": "This record id is not allowed to be merged",
                "status": "error",
            }
        ]
    }


async def test_error_step_retry_after(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    job_id = server.add_job("Leads", MASTER, [ZohoErrorReply("TOO_MANY_REQUESTS", retry_after="3")])

    reply = await send(session, merge_url(server), params={"job_id": job_id})

    assert reply.status == 429
    assert reply.headers["Retry-After"] == "3"
    assert reply.json()["code"] == "TOO_MANY_REQUESTS"


async def test_error_step_no_retry_after(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    job_id = server.add_job("Leads", MASTER, [ZohoErrorReply("TOO_MANY_REQUESTS")])

    reply = await send(session, merge_url(server), params={"job_id": job_id})

    assert "Retry-After" not in reply.headers


@pytest.mark.parametrize(
    ("code", "http_status"),
    [
        ("INVALID_REQUEST_METHOD", 400),
        ("INVALID_DATA", 400),
        ("INVALID_MODULE", 400),
        ("OAUTH_SCOPE_MISMATCH", 401),
        ("AUTHENTICATION_FAILURE", 401),
        ("INVALID_URL_PATTERN", 404),
        ("INTERNAL_ERROR", 500),
        ("INVALID_TOKEN", 401),
        ("INVALID_OAUTHTOKEN", 401),
        ("TOO_MANY_REQUESTS", 429),
        ("INVALID_HOST", 400),
        ("API_NOT_SUPPORTED", 400),
        ("NOT_ALLOWED", 400),
        ("DUPLICATE_DATA", 400),
        ("MANDATORY_NOT_FOUND", 400),
        ("DEPENDENT_FIELD_MISSING", 400),
        ("LIMIT_EXCEEDED", 400),
        ("SOMETHING_NEW", 400),
    ],
)
def test_error_default_http_status(code: str, http_status: int) -> None:
    assert ZohoErrorReply(code).http_status == http_status


def test_error_default_messages() -> None:
    assert ZohoErrorReply("INVALID_TOKEN").message == "invalid oauth token"
    assert ZohoErrorReply("INVALID_MODULE").message == "the module name given seems to be invalid"
    assert ZohoErrorReply("SOMETHING_NEW").message == "something new"


def test_error_overrides_kept() -> None:
    error = ZohoErrorReply("INTERNAL_ERROR", http_status=503, message="try later")

    assert error.http_status == 503
    assert error.message == "try later"


async def test_raw_reply_html_502(server: FakeZohoServer, session: aiohttp.ClientSession) -> None:
    page = "<html><body>502 Bad Gateway</body></html>"
    job_id = server.add_job("Leads", MASTER, [RawReply(502, page, content_type="text/html")])

    reply = await send(session, merge_url(server), params={"job_id": job_id})

    assert reply.status == 502
    assert reply.headers["Content-Type"] == "text/html"
    assert reply.body == page.encode()


async def test_raw_reply_bare_204(server: FakeZohoServer, session: aiohttp.ClientSession) -> None:
    job_id = server.add_job("Leads", MASTER, [RawReply(204, content_type=None)])

    reply = await send(session, merge_url(server), params={"job_id": job_id})

    assert reply.status == 204
    assert "Content-Type" not in reply.headers
    assert reply.body == b""


async def test_raw_reply_truncated_json(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    job_id = server.add_job("Leads", MASTER, [RawReply(200, b'{"merge": [{"job_id": "12')])

    reply = await send(session, merge_url(server), params={"job_id": job_id})

    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.body == b'{"merge": [{"job_id": "12'


async def test_raw_reply_redirect_headers(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    redirect = RawReply(302, content_type=None, headers={"Location": "/elsewhere"})
    job_id = server.add_job("Leads", MASTER, [redirect])

    reply = await send(session, merge_url(server), params={"job_id": job_id})

    assert reply.status == 302
    assert reply.headers["Location"] == "/elsewhere"


# Delays and concurrency


async def test_delayed_steps_overlap(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    job_id = server.add_job("Leads", MASTER, [StatusReply("RUNNING", delay=0.05)])
    loop = asyncio.get_running_loop()

    started = loop.time()
    replies = await asyncio.gather(
        send(session, merge_url(server), params={"job_id": job_id}),
        send(session, merge_url(server), params={"job_id": job_id}),
    )
    elapsed = loop.time() - started

    assert [reply.status for reply in replies] == [200, 200]
    assert server.max_in_flight == 2
    assert elapsed >= 0.05


async def test_delayed_error_step(server: FakeZohoServer, session: aiohttp.ClientSession) -> None:
    job_id = server.add_job("Leads", MASTER, [ZohoErrorReply("INTERNAL_ERROR", delay=0.05)])
    loop = asyncio.get_running_loop()

    started = loop.time()
    reply = await send(session, merge_url(server), params={"job_id": job_id})
    elapsed = loop.time() - started

    assert reply.status == 500
    assert elapsed >= 0.05


async def test_many_concurrent_requests(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    job_id = server.add_job("Leads", MASTER, ["RUNNING"])

    replies = await asyncio.gather(
        *(send(session, merge_url(server), params={"job_id": job_id}) for _ in range(2000))
    )

    assert all(reply.status == 200 for reply in replies)
    assert len(server.requests) == 2000


async def test_close_cancels_pending_delay(session: aiohttp.ClientSession) -> None:
    fake = FakeZohoServer()
    await fake.start()
    job_id = fake.add_job("Leads", MASTER, [StatusReply("RUNNING", delay=30.0)])
    pending = asyncio.create_task(send(session, merge_url(fake), params={"job_id": job_id}))
    async with asyncio.timeout(2.0):
        # The server has no event to wait on, so poll its in-flight peak.
        while fake.max_in_flight == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()

    started = loop.time()
    await fake.close()
    elapsed = loop.time() - started

    assert elapsed < 2.0
    with pytest.raises(aiohttp.ClientError):
        await pending


# Authentication


async def test_missing_authorization_rejected(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    reply = await send(session, merge_url(server), token=None)

    assert reply.status == 401
    assert reply.json()["code"] == "AUTHENTICATION_FAILURE"
    assert reply.json()["status"] == "error"


async def test_other_auth_scheme_rejected(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with session.get(merge_url(server), headers=headers) as response:
        body = await response.json()

    assert response.status == 401
    assert body["code"] == "AUTHENTICATION_FAILURE"


async def test_unknown_token_rejected(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    reply = await send(session, merge_url(server), token="wrong-token")

    assert reply.status == 401
    assert reply.json() == {
        "code": "INVALID_TOKEN",
        "details": {},
        "message": "invalid oauth token",
        "status": "error",
    }


async def test_revoked_token_rejected(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    job_id = server.add_job("Leads", MASTER, ["RUNNING"])

    before = await send(session, merge_url(server), params={"job_id": job_id})
    server.access_tokens.discard(TOKEN)
    after = await send(session, merge_url(server), params={"job_id": job_id})

    assert before.status == 200
    assert after.status == 401
    assert after.json()["code"] == "INVALID_TOKEN"


async def test_added_token_accepted(server: FakeZohoServer, session: aiohttp.ClientSession) -> None:
    job_id = server.add_job("Leads", MASTER, ["RUNNING"])
    server.access_tokens.add("fresh-token")

    reply = await send(session, merge_url(server), token="fresh-token", params={"job_id": job_id})

    assert reply.status == 200


# Request validation


async def test_unknown_module_rejected(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    reply = await send(session, merge_url(server, module="Custom_Module1"))

    assert reply.status == 400
    assert reply.json()["code"] == "INVALID_MODULE"
    assert reply.json()["details"] == {"resource_path_index": 0}


async def test_added_module_accepted(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    server.add_module("Custom_Module1")
    job_id = server.add_job("Custom_Module1", MASTER, ["RUNNING"])

    reply = await send(
        session, merge_url(server, module="Custom_Module1"), params={"job_id": job_id}
    )

    assert reply.status == 200


async def test_non_digit_record_rejected(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    reply = await send(session, merge_url(server, record_id="12ab"))

    assert reply.status == 400
    assert reply.json()["code"] == "INVALID_DATA"
    assert reply.json()["details"] == {"resource_path_index": 1}


async def test_non_digit_job_id_rejected(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    reply = await send(session, merge_url(server), params={"job_id": "12ab"})

    assert reply.status == 400
    assert reply.json()["code"] == "INVALID_DATA"
    assert reply.json()["details"] == {"param_name": "job_id"}


@pytest.mark.parametrize(
    "path",
    [
        "/crm/v5/Leads/2378988000000509963/actions/merge",
        "/crm/v2.1/Leads/2378988000000509963/actions/merge",
        "/crm/v8/Leads/actions/merge",
        "/crm/v8/Leads/2378988000000509963/actions/merge/",
        "/",
    ],
)
async def test_bad_url_pattern_rejected(
    server: FakeZohoServer, session: aiohttp.ClientSession, path: str
) -> None:
    reply = await send(session, f"{server.api_domain}{path}")

    assert reply.status == 404
    assert reply.json()["code"] == "INVALID_URL_PATTERN"


# POST is Merge Records, served by `server.merges`.
@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_other_method_rejected(
    server: FakeZohoServer, session: aiohttp.ClientSession, method: str
) -> None:
    reply = await send(session, merge_url(server), method=method)

    assert reply.status == 400
    assert reply.json()["code"] == "INVALID_REQUEST_METHOD"


async def test_unknown_job_no_content(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    server.add_job("Leads", MASTER, ["RUNNING"])

    reply = await send(session, merge_url(server), params={"job_id": "2423488000000999999"})

    assert reply.status == 204
    assert reply.body == b""
    assert "Content-Type" not in reply.headers


async def test_other_master_job_no_content(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    job_id = server.add_job("Leads", OTHER_MASTER, ["RUNNING"])

    reply = await send(session, merge_url(server), params={"job_id": job_id})

    assert reply.status == 204


async def test_other_module_job_no_content(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    job_id = server.add_job("Contacts", MASTER, ["RUNNING"])

    reply = await send(session, merge_url(server), params={"job_id": job_id})

    assert reply.status == 204


# Listing without job_id


async def test_listing_reports_master_jobs(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    first = server.add_job("Leads", MASTER, ["RUNNING", "COMPLETED"])
    server.add_job("Leads", OTHER_MASTER, ["RUNNING"])
    second = server.add_job("Leads", MASTER, ["SCHEDULED", "RUNNING"])

    listed = await send(session, merge_url(server))
    listed_again = await send(session, merge_url(server))

    assert listed.status == 200
    assert listed.json() == {
        "merge": [
            {"job_id": first, "status": "RUNNING"},
            {"job_id": second, "status": "SCHEDULED"},
        ]
    }
    assert listed_again.json() == {
        "merge": [
            {"job_id": first, "status": "COMPLETED"},
            {"job_id": second, "status": "RUNNING"},
        ]
    }


async def test_listing_without_jobs_no_content(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    server.add_job("Leads", OTHER_MASTER, ["RUNNING"])

    reply = await send(session, merge_url(server))

    assert reply.status == 204
    assert reply.body == b""
    assert "Content-Type" not in reply.headers


async def test_listing_error_step_wins(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    first = server.add_job("Leads", MASTER, ["RUNNING", "COMPLETED"])
    server.add_job("Leads", MASTER, [ZohoErrorReply("INTERNAL_ERROR"), "RUNNING"])
    server.add_job("Leads", MASTER, [RawReply(502, "bad gateway", content_type="text/plain")])

    reply = await send(session, merge_url(server))

    assert reply.status == 500
    assert reply.json()["code"] == "INTERNAL_ERROR"
    assert await poll_status(session, server, first) == "COMPLETED"


async def test_listing_capped_at_100(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    job_ids = [server.add_job("Leads", MASTER, ["RUNNING"]) for _ in range(101)]

    reply = await send(session, merge_url(server))

    listed = [entry["job_id"] for entry in reply.json()["merge"]]
    assert listed == job_ids[:100]


# Timeline


async def test_timeline_follows_clock(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    timeline = [(0.0, "SCHEDULED"), (0.1, "RUNNING"), (0.2, "COMPLETED")]
    job_id = server.add_job("Leads", MASTER, timeline=timeline)

    at_start = await poll_status(session, server, job_id)
    await asyncio.sleep(0.15)
    in_middle = await poll_status(session, server, job_id)
    await asyncio.sleep(0.1)
    at_end = await poll_status(session, server, job_id)

    assert at_start == "SCHEDULED"
    assert in_middle == "RUNNING"
    assert at_end == "COMPLETED"


async def test_timeline_ignores_poll_count(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    job_id = server.add_job("Leads", MASTER, timeline=[(0.0, "SCHEDULED"), (5.0, "COMPLETED")])

    seen = [await poll_status(session, server, job_id) for _ in range(3)]

    assert seen == ["SCHEDULED", "SCHEDULED", "SCHEDULED"]


def test_timeline_clock_starts_at_start() -> None:
    fake = FakeZohoServer()
    job_id = fake.add_job("Leads", MASTER, timeline=[(0.0, "SCHEDULED"), (0.1, "COMPLETED")])
    time.sleep(0.15)

    async def first_status() -> object:
        async with fake, aiohttp.ClientSession() as client:
            return await poll_status(client, fake, job_id)

    assert asyncio.run(first_status()) == "SCHEDULED"


# Recorded requests


async def test_requests_recorded_with_rejections(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    job_id = server.add_job("Leads", MASTER, ["RUNNING"])
    loop = asyncio.get_running_loop()

    await send(session, merge_url(server), token=None)
    await send(session, merge_url(server), params={"job_id": job_id, "fields": "all"})

    rejected, accepted = server.requests
    assert rejected.method == "GET"
    assert rejected.path == f"/crm/v8/Leads/{MASTER}/actions/merge"
    assert rejected.job_id is None
    assert "authorization" not in rejected.headers
    assert accepted.query == {"job_id": job_id, "fields": "all"}
    assert accepted.query_string == f"job_id={job_id}&fields=all"
    assert accepted.job_id == job_id
    assert accepted.headers["authorization"] == f"Zoho-oauthtoken {TOKEN}"
    assert rejected.received_at <= accepted.received_at <= loop.time()


async def test_invalid_job_id_recorded(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    await send(session, merge_url(server), params={"job_id": "12ab"})

    assert server.requests[0].job_id == "12ab"


async def test_reset_requests_clears(
    server: FakeZohoServer, session: aiohttp.ClientSession
) -> None:
    await send(session, merge_url(server))

    server.reset_requests()

    assert server.requests == []
    assert server.max_in_flight == 0


# Lifecycle and argument checks


def test_api_domain_before_start() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = FakeZohoServer().api_domain


async def test_api_domain_is_loopback(server: FakeZohoServer) -> None:
    assert server.api_domain.startswith("http://127.0.0.1:")


async def test_start_twice_rejected(server: FakeZohoServer) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        await server.start()


async def test_close_is_idempotent() -> None:
    fake = FakeZohoServer()
    await fake.start()

    await fake.close()
    await fake.close()

    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.api_domain


def test_single_str_tokens_rejected() -> None:
    with pytest.raises(TypeError, match="access_tokens"):
        FakeZohoServer(access_tokens="test-token")


def test_add_job_needs_one_script() -> None:
    fake = FakeZohoServer()

    with pytest.raises(ValueError, match="not both"):
        fake.add_job("Leads", MASTER, ["RUNNING"], timeline=[(0.0, "RUNNING")])
    with pytest.raises(ValueError, match="statuses or timeline"):
        fake.add_job("Leads", MASTER)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"statuses": []}, "at least one step"),
        ({"timeline": []}, "at least one"),
        ({"timeline": [(0.5, "RUNNING")]}, "start at 0.0"),
        ({"timeline": [(0.0, "RUNNING"), (0.0, "COMPLETED")]}, "increase strictly"),
        ({"timeline": [(0.0, "RUNNING"), (float("nan"), "COMPLETED")]}, "increase strictly"),
        ({"statuses": ["RUNNING"], "job_id": "12ab"}, "job_id must be digits"),
    ],
)
def test_add_job_rejects_bad_script(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FakeZohoServer().add_job("Leads", MASTER, **kwargs)


def test_add_job_rejects_str_statuses() -> None:
    with pytest.raises(TypeError, match="sequence of steps"):
        FakeZohoServer().add_job("Leads", MASTER, "COMPLETED")


def test_add_job_rejects_bad_step() -> None:
    with pytest.raises(TypeError, match="got int"):
        FakeZohoServer().add_job("Leads", MASTER, [200])  # type: ignore[list-item]


def test_add_job_rejects_unknown_module() -> None:
    with pytest.raises(ValueError, match="add_module"):
        FakeZohoServer().add_job("Lead", MASTER, ["RUNNING"])


def test_add_job_rejects_bad_master() -> None:
    with pytest.raises(ValueError, match="master_record_id"):
        FakeZohoServer().add_job("Leads", "12ab", ["RUNNING"])


def test_add_job_rejects_reused_id() -> None:
    fake = FakeZohoServer()
    job_id = fake.add_job("Leads", MASTER, ["RUNNING"])

    with pytest.raises(ValueError, match="already in use"):
        fake.add_job("Leads", MASTER, ["RUNNING"], job_id=job_id)


def test_add_module_rejects_slash() -> None:
    with pytest.raises(ValueError, match="without '/'"):
        FakeZohoServer().add_module("Leads/1")


def test_replies_reject_invalid_delay() -> None:
    with pytest.raises(ValueError, match="delay"):
        StatusReply("RUNNING", delay=-1.0)
    with pytest.raises(ValueError, match="delay"):
        ZohoErrorReply("INTERNAL_ERROR", delay=float("inf"))
    with pytest.raises(ValueError, match="delay"):
        RawReply(delay=-0.1)


def test_error_reply_rejects_bad_fields() -> None:
    with pytest.raises(ValueError, match="envelope"):
        ZohoErrorReply("INTERNAL_ERROR", envelope="data")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="code"):
        ZohoErrorReply("")
    with pytest.raises(ValueError, match="http_status"):
        ZohoErrorReply("INTERNAL_ERROR", http_status=99)


def test_raw_reply_rejects_bad_fields() -> None:
    with pytest.raises(ValueError, match="cannot have a body"):
        RawReply(204, b"{}")
    with pytest.raises(ValueError, match="content_type"):
        RawReply(200, headers={"content-type": "text/html"})
    with pytest.raises(ValueError, match="status"):
        RawReply(99)
