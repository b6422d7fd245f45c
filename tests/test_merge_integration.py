"""Merge Records over real TCP against FakeZohoServer: outcomes, errors, waits, fake checks."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from conftest import MERGE_ERRORS, ClientFactory, FakeClock

from zoho_merge_async import (
    ChildRecord,
    MergeClient,
    MergeField,
    MergeOutcome,
    MergeOutcomeUnknownError,
    MergeStatus,
    MergeStatusChange,
    MergeTimeoutError,
    NotAllowedError,
    merge_and_wait,
)
from zoho_merge_async._fake_merge import LARGE_MERGE_RELATED_RECORDS
from zoho_merge_async.testing import FakeZohoServer, RawReply, StatusReply, ZohoErrorReply

TOKEN = "1000.fake-server-token"
MODULE = "Contacts"
MASTER = "2378988000000700001"
SMALL_CHILD = "2378988000000700002"
LARGE_CHILD = "2378988000000700003"
OTHER_CHILD = "2378988000000700004"
OTHER_MASTER = "2378988000000700005"


@pytest.fixture
async def server() -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=(TOKEN,)) as fake:
        fake.merges.add_record(MODULE, MASTER)
        fake.merges.add_record(MODULE, SMALL_CHILD, related_records=3)
        fake.merges.add_record(MODULE, LARGE_CHILD,
                               related_records=LARGE_MERGE_RELATED_RECORDS + 1)
        fake.merges.add_record(MODULE, OTHER_CHILD)
        fake.merges.add_record(MODULE, OTHER_MASTER)
        yield fake


@pytest.fixture
def client(server: FakeZohoServer, make_client: ClientFactory) -> MergeClient:
    """A client of `server` on the fake clock, so that waits take no real time."""
    return make_client(access_token=TOKEN, api_domain=server.api_domain)


async def post_raw(server: FakeZohoServer, body: object, master: str = MASTER
                   ) -> tuple[int, dict[str, Any]]:
    """Send a Merge Records request with `body` as given, and return the status and JSON."""
    url = f"{server.api_domain}/crm/v8/{MODULE}/{master}/actions/merge"
    headers = {"Authorization": f"Zoho-oauthtoken {TOKEN}"}
    async with aiohttp.ClientSession() as session, \
            session.post(url, data=json.dumps(body), headers=headers) as reply:
        return reply.status, await reply.json()


def error_of(answer: dict[str, Any]) -> dict[str, Any]:
    """Return the error object of a Zoho error response, in either envelope."""
    error: dict[str, Any] = answer["merge"][0] if "merge" in answer else answer
    return error


# Outcomes


async def test_small_merge_done_at_once(server: FakeZohoServer, client: MergeClient) -> None:
    result = await client.merge_records(MODULE, MASTER, [SMALL_CHILD])

    assert result.outcome is MergeOutcome.MERGED
    assert result.job_id is None
    assert result.master_record_id == MASTER


async def test_small_merge_deletes_child(server: FakeZohoServer, client: MergeClient) -> None:
    await client.merge_records(MODULE, MASTER, [SMALL_CHILD, OTHER_CHILD])

    assert not server.merges.has_record(MODULE, SMALL_CHILD)
    assert not server.merges.has_record(MODULE, OTHER_CHILD)
    assert server.merges.has_record(MODULE, MASTER)


async def test_large_merge_scheduled(server: FakeZohoServer, client: MergeClient) -> None:
    result = await client.merge_records(MODULE, MASTER, [SMALL_CHILD, LARGE_CHILD])

    assert result.outcome is MergeOutcome.SCHEDULED
    assert result.job_id is not None
    job = await client.get_merge_status(MODULE, MASTER, result.job_id)
    assert job.status is MergeStatus.SCHEDULED


async def test_threshold_merge_done_at_once(server: FakeZohoServer,
                                            client: MergeClient) -> None:
    server.merges.add_record(MODULE, "42", related_records=LARGE_MERGE_RELATED_RECORDS)

    result = await client.merge_records(MODULE, MASTER, ["42"])

    assert result.outcome is MergeOutcome.MERGED


async def test_sent_body_recorded(server: FakeZohoServer, client: MergeClient) -> None:
    child = ChildRecord(SMALL_CHILD, ["Email", MergeField("Photo", ["111"])])

    await client.merge_records(MODULE, MASTER, [child],
                               master_record_fields=[MergeField("Contract", None)])

    request, = server.requests
    assert request.method == "POST"
    assert json.loads(request.body) == {"merge": [{
        "data": [{"id": SMALL_CHILD, "_fields": [
            {"api_name": "Email"}, {"api_name": "Photo", "_data": [{"id": "111"}]}]}],
        "master_record_fields": [{"api_name": "Contract", "_data": None}],
    }]}


# Rejected before sending


@pytest.mark.parametrize(("children", "master_fields", "expected"), [
    ([], (), "no child record given"),
    ([SMALL_CHILD, OTHER_CHILD, LARGE_CHILD], (), "3 child records given"),
    ([MASTER], (), f"master record {MASTER} is also given as a child record"),
    ([SMALL_CHILD, SMALL_CHILD], (), f"child record {SMALL_CHILD} is given twice"),
    ([ChildRecord(SMALL_CHILD, ["Email"])], ["Email"], "field Email is named twice"),
], ids=["no child", "three children", "master as child", "duplicate id", "field twice"])
async def test_invalid_merge_not_sent(server: FakeZohoServer, client: MergeClient,
                                      children: list[Any], master_fields: list[str],
                                      expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        await client.merge_records(MODULE, MASTER, children, master_record_fields=master_fields)

    assert server.requests == []


# Zoho's merge errors


@pytest.mark.parametrize("envelope", ["top", "merge"])
@pytest.mark.parametrize("code", sorted(MERGE_ERRORS))
async def test_merge_error_code_typed(server: FakeZohoServer, client: MergeClient, code: str,
                                      envelope: str) -> None:
    details = {"api_name": "id", "json_path": "$.merge[0].data[0].id"}
    server.merges.fail_next(ZohoErrorReply(code, details=details, envelope=envelope))  # type: ignore[arg-type]

    with pytest.raises(MERGE_ERRORS[code]) as raised:
        await client.merge_records(MODULE, MASTER, [SMALL_CHILD])

    assert raised.value.code == code
    assert raised.value.http_status == 400
    assert raised.value.details == details


async def test_internal_error_sent_once(server: FakeZohoServer, client: MergeClient) -> None:
    server.merges.fail_next(ZohoErrorReply("INTERNAL_ERROR", envelope="merge"))

    with pytest.raises(MergeOutcomeUnknownError) as raised:
        await client.merge_records(MODULE, MASTER, [SMALL_CHILD])

    assert len(server.requests) == 1
    assert client.stats.retries == 0
    assert "may or may not have been done or scheduled" in str(raised.value)
    assert f"get_merge_jobs('{MODULE}', '{MASTER}')" in str(raised.value)


async def test_lost_answer_sent_once(server: FakeZohoServer,
                                     make_client: ClientFactory) -> None:
    client = make_client(access_token=TOKEN, api_domain=server.api_domain,
                         request_timeout=0.05)
    server.merges.fail_next(RawReply(201, "{}", delay=0.3))

    with pytest.raises(MergeOutcomeUnknownError, match="request timeout"):
        await client.merge_records(MODULE, MASTER, [SMALL_CHILD])

    assert len(server.requests) == 1


async def test_merge_and_wait_not_retried(server: FakeZohoServer, client: MergeClient) -> None:
    server.merges.fail_next(ZohoErrorReply("INTERNAL_ERROR"))

    with pytest.raises(MergeOutcomeUnknownError):
        await merge_and_wait(client, MODULE, MASTER, [LARGE_CHILD])

    assert len(server.requests) == 1


# Records in a scheduled merge


async def test_busy_child_not_allowed(server: FakeZohoServer, client: MergeClient) -> None:
    await client.merge_records(MODULE, MASTER, [LARGE_CHILD])

    with pytest.raises(NotAllowedError) as raised:
        await client.merge_records(MODULE, OTHER_MASTER, [LARGE_CHILD])

    assert raised.value.message == "This record id is not allowed to be merged"
    assert raised.value.details == {"api_name": "id", "json_path": "$.merge[0].data[0].id"}


async def test_busy_master_not_allowed(server: FakeZohoServer, client: MergeClient) -> None:
    await client.merge_records(MODULE, MASTER, [LARGE_CHILD])

    with pytest.raises(NotAllowedError) as raised:
        await client.merge_records(MODULE, MASTER, [SMALL_CHILD])

    assert raised.value.details == {"resource_path_index": 1}


async def test_busy_master_as_child(server: FakeZohoServer, client: MergeClient) -> None:
    await client.merge_records(MODULE, MASTER, [LARGE_CHILD])

    with pytest.raises(NotAllowedError):
        await client.merge_records(MODULE, OTHER_MASTER, [MASTER])


async def test_added_job_makes_master_busy(server: FakeZohoServer,
                                           client: MergeClient) -> None:
    server.add_job(MODULE, MASTER, ["RUNNING"])

    with pytest.raises(NotAllowedError):
        await client.merge_records(MODULE, MASTER, [SMALL_CHILD])


async def test_finished_job_frees_records(server: FakeZohoServer, client: MergeClient) -> None:
    server.merges.script_job(MODULE, MASTER, ["RUNNING", "FAILURE"])
    started = await client.merge_records(MODULE, MASTER, [LARGE_CHILD])
    assert started.job_id is not None
    await client.wait_for_merge(MODULE, MASTER, started.job_id)

    again = await client.merge_records(MODULE, OTHER_MASTER, [LARGE_CHILD])

    assert again.outcome is MergeOutcome.SCHEDULED


# merge_and_wait


async def test_wait_through_scheduled_job(server: FakeZohoServer, client: MergeClient,
                                          clock: FakeClock) -> None:
    server.merges.script_job(MODULE, MASTER, ["SCHEDULED", "RUNNING", "RUNNING", "completed"])

    finished = await client.merge_and_wait(MODULE, MASTER, [LARGE_CHILD, SMALL_CHILD])

    assert finished.status is MergeStatus.COMPLETED
    assert finished.merge.outcome is MergeOutcome.SCHEDULED
    assert [request.method for request in server.requests] == ["POST"] + ["GET"] * 4
    assert clock.sleeps == [2.0, 3.0, 4.5]


async def test_wait_reports_status_changes(server: FakeZohoServer,
                                           client: MergeClient) -> None:
    server.merges.script_job(MODULE, MASTER, ["SCHEDULED", "RUNNING", "COMPLETED"])
    changes: list[MergeStatusChange] = []

    finished = await client.merge_and_wait(MODULE, MASTER, [LARGE_CHILD],
                                           on_status=changes.append)

    assert [change.status for change in changes] == [
        MergeStatus.SCHEDULED, MergeStatus.RUNNING, MergeStatus.COMPLETED]
    assert {change.job_id for change in changes} == {finished.job_id}


async def test_completed_job_deletes_children(server: FakeZohoServer,
                                              client: MergeClient) -> None:
    await client.merge_and_wait(MODULE, MASTER, [LARGE_CHILD, SMALL_CHILD])

    assert not server.merges.has_record(MODULE, LARGE_CHILD)
    assert not server.merges.has_record(MODULE, SMALL_CHILD)


async def test_failed_job_keeps_children(server: FakeZohoServer, client: MergeClient) -> None:
    server.merges.script_job(MODULE, MASTER, ["RUNNING", StatusReply("FAILURE")])

    finished = await merge_and_wait(client, MODULE, MASTER, [LARGE_CHILD])

    assert finished.status is MergeStatus.FAILURE
    assert server.merges.has_record(MODULE, LARGE_CHILD)


async def test_wait_through_immediate_merge(server: FakeZohoServer,
                                            client: MergeClient) -> None:
    finished = await merge_and_wait(client, MODULE, MASTER, [SMALL_CHILD])

    assert finished.status is MergeStatus.COMPLETED
    assert finished.job_id is None
    assert len(server.requests) == 1


async def test_wait_deadline_gives_job(server: FakeZohoServer, client: MergeClient,
                                       clock: FakeClock) -> None:
    server.merges.script_job(MODULE, MASTER, ["RUNNING"])

    with pytest.raises(MergeTimeoutError) as raised:
        await client.merge_and_wait(MODULE, MASTER, [LARGE_CHILD], timeout=10.0)

    assert raised.value.job_id is not None
    assert raised.value.last_status is MergeStatus.RUNNING
    assert clock.now == pytest.approx(1010.0)


# The fake server's own checks, with bodies the client never sends


FAKE_REJECTIONS: list[tuple[str, object, str, str, dict[str, Any]]] = [
    ("two merge objects", {"merge": [{"data": [{"id": SMALL_CHILD}]}] * 2},
     "top", "INVALID_DATA", {}),
    ("no merge key", {"data": []}, "top", "MANDATORY_NOT_FOUND",
     {"api_name": "merge", "json_path": "$.merge"}),
    ("empty data", {"merge": [{"data": []}]}, "merge", "INVALID_DATA",
     {"api_name": "data", "json_path": "$.merge[0].data", "minimum_length": 1}),
    ("three children", {"merge": [{"data": [{"id": SMALL_CHILD}, {"id": OTHER_CHILD},
                                            {"id": LARGE_CHILD}]}]},
     "merge", "INVALID_DATA",
     {"api_name": "data", "json_path": "$.merge[0].data", "maximum_length": 2}),
    ("child without id", {"merge": [{"data": [{"_fields": []}]}]}, "merge",
     "MANDATORY_NOT_FOUND", {"api_name": "id", "json_path": "$.merge[0].data[0].id"}),
    ("master as child", {"merge": [{"data": [{"id": MASTER}]}]}, "merge", "DUPLICATE_DATA",
     {"api_name": "id", "json_path": "$.merge[0].data[0].id"}),
    ("child twice", {"merge": [{"data": [{"id": SMALL_CHILD}, {"id": SMALL_CHILD}]}]},
     "merge", "DUPLICATE_DATA", {"api_name": "id", "json_path": "$.merge[0].data[1].id"}),
    ("unknown child", {"merge": [{"data": [{"id": "999"}]}]}, "merge", "INVALID_DATA",
     {"api_name": "id", "json_path": "$.merge[0].data[0].id"}),
    ("field without name", {"merge": [{"data": [{"id": SMALL_CHILD, "_fields": [{}]}]}]},
     "merge", "MANDATORY_NOT_FOUND",
     {"api_name": "api_name", "json_path": "$.merge[0].data[0]._fields[0].api_name"}),
    ("field twice", {"merge": [{"data": [{"id": SMALL_CHILD,
                                          "_fields": [{"api_name": "Email"}]}],
                                "master_record_fields": [{"api_name": "Email"}]}]},
     "merge", "DUPLICATE_DATA",
     {"api_name": "api_name", "json_path": "$.merge[0].master_record_fields[0].api_name"}),
    ("attachment without id",
     {"merge": [{"data": [{"id": SMALL_CHILD}],
                 "master_record_fields": [{"api_name": "Photo", "_data": [{}]}]}]},
     "merge", "MANDATORY_NOT_FOUND",
     {"api_name": "id", "json_path": "$.merge[0].master_record_fields[0]._data[0].id"}),
]


@pytest.mark.parametrize(("case", "body", "envelope", "code", "details"), FAKE_REJECTIONS,
                         ids=[case for case, *_ in FAKE_REJECTIONS])
async def test_fake_rejects_body(server: FakeZohoServer, case: str, body: object,
                                 envelope: str, code: str, details: dict[str, Any]) -> None:
    status, answer = await post_raw(server, body)

    assert status == 400
    assert ("merge" in answer) is (envelope == "merge")
    assert error_of(answer)["code"] == code
    assert error_of(answer)["details"] == details


async def test_fake_rejects_non_json(server: FakeZohoServer) -> None:
    url = f"{server.api_domain}/crm/v8/{MODULE}/{MASTER}/actions/merge"
    headers = {"Authorization": f"Zoho-oauthtoken {TOKEN}"}
    async with aiohttp.ClientSession() as session, \
            session.post(url, data=b"\xff not json", headers=headers) as reply:
        answer = await reply.json()

    assert reply.status == 400
    assert answer["code"] == "INVALID_DATA"


async def test_fake_unknown_master(server: FakeZohoServer) -> None:
    status, answer = await post_raw(server, {"merge": [{"data": [{"id": SMALL_CHILD}]}]},
                                    master="111")

    assert status == 400
    assert answer == {"code": "INVALID_DATA", "details": {"resource_path_index": 1},
                      "message": "Master record id is not available", "status": "error"}


async def test_fake_accepts_numeric_ids(server: FakeZohoServer) -> None:
    body = {"merge": [{"data": [{"id": int(SMALL_CHILD)}]}]}

    status, answer = await post_raw(server, body)

    assert status == 201
    assert answer["merge"][0]["details"] == {"id": MASTER}


async def test_fake_unknown_module(server: FakeZohoServer) -> None:
    url = f"{server.api_domain}/crm/v8/Potentials_X/{MASTER}/actions/merge"
    headers = {"Authorization": f"Zoho-oauthtoken {TOKEN}"}
    async with aiohttp.ClientSession() as session, \
            session.post(url, json={"merge": []}, headers=headers) as reply:
        answer = await reply.json()

    assert answer["code"] == "INVALID_MODULE"


def test_fake_rejects_bad_record() -> None:
    server = FakeZohoServer()

    with pytest.raises(ValueError, match="related_records must be a whole number"):
        server.merges.add_record(MODULE, MASTER, related_records=-1)
