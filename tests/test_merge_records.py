"""Merge Records against responses mocked with aioresponses: body, checks, outcomes, errors."""

from __future__ import annotations

import pickle
import re
import socket
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from conftest import (
    JOB_ID,
    MERGE_ERRORS,
    MODULE,
    RECORD_ID,
    ClientFactory,
    error_body,
    merge_url,
    request_count,
)

from zoho_merge_async import (
    ChildRecord,
    FinishedMerge,
    InvalidTokenError,
    MergeField,
    MergeOutcome,
    MergeOutcomeUnknownError,
    MergeResult,
    MergeStatus,
    RateLimitError,
    TransportError,
    UnexpectedResponseError,
    ZohoAPIError,
)

CHILD = "2378988000000509964"
OTHER_CHILD = "2378988000000509965"
ATTACHMENT = "2378988000000600123"


def merged_body(record_id: str = RECORD_ID) -> dict[str, Any]:
    return {"merge": [{"code": "SUCCESS", "details": {"id": record_id},
                       "message": "The records has been merged successfully",
                       "status": "success"}]}


def scheduled_body(job_id: str = JOB_ID) -> dict[str, Any]:
    return {"merge": [{"code": "SCHEDULED", "details": {"job_id": job_id},
                       "message": "The records have been scheduled in a scheduler",
                       "status": "success"}]}


def sent_json(mocked: aioresponses) -> Any:
    """Return the JSON body of the single request aioresponses recorded."""
    assert request_count(mocked) == 1
    ((_, _), calls), = mocked.requests.items()
    return calls[0].kwargs["json"]


# Request body


async def test_body_one_child(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.post(merge_url(), status=201, payload=merged_body())

    await make_client().merge_records(MODULE, RECORD_ID, [CHILD])

    assert sent_json(mocked) == {"merge": [{"data": [{"id": CHILD}]}]}


async def test_body_fields_and_files(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.post(merge_url(), status=201, payload=merged_body())
    children = [
        ChildRecord(CHILD, fields=["Email", MergeField("Photo", attachment_ids=[ATTACHMENT])]),
        ChildRecord(int(OTHER_CHILD), fields=("Company",)),  # type: ignore[arg-type]
    ]

    await make_client().merge_records(
        MODULE, int(RECORD_ID), children,
        master_record_fields=["Phone", MergeField("Contract", attachment_ids=None)])

    assert sent_json(mocked) == {"merge": [{
        "data": [
            {"id": CHILD, "_fields": [
                {"api_name": "Email"},
                {"api_name": "Photo", "_data": [{"id": ATTACHMENT}]},
            ]},
            {"id": OTHER_CHILD, "_fields": [{"api_name": "Company"}]},
        ],
        "master_record_fields": [
            {"api_name": "Phone"},
            {"api_name": "Contract", "_data": None},
        ],
    }]}


async def test_post_url_and_method(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.post(merge_url(), status=201, payload=merged_body())

    await make_client().merge_records(MODULE, RECORD_ID, [CHILD])

    ((method, url), _), = mocked.requests.items()
    assert method == "POST"
    assert url.path == f"/crm/v7/Leads/{RECORD_ID}/actions/merge"
    assert url.query_string == ""


def test_merge_field_clear_json() -> None:
    assert MergeField("Photo", None).to_json() == {"api_name": "Photo", "_data": None}


def test_merge_field_default_json() -> None:
    assert MergeField("Photo").to_json() == {"api_name": "Photo"}


def test_merge_field_ids_tuple() -> None:
    field = MergeField("Photo", [ATTACHMENT, 42])  # type: ignore[list-item]

    assert field.attachment_ids == (ATTACHMENT, "42")


def test_child_record_int_id() -> None:
    assert ChildRecord(int(CHILD)).id == CHILD  # type: ignore[arg-type]


# Checks before sending


REJECTED_ARGUMENTS: list[tuple[str, dict[str, Any], str]] = [
    ("no child", {"children": []}, "no child record given"),
    ("three children", {"children": [CHILD, OTHER_CHILD, "3"]}, "3 child records given"),
    ("master as child", {"children": [RECORD_ID]}, "is also given as a child"),
    ("child twice", {"children": [CHILD, int(CHILD)]}, "is given twice"),
    ("single str", {"children": CHILD}, "pass a list of one or two child"),
    ("bad child id", {"children": ["12x"]}, "invalid child record id '12x'"),
    ("field in both children",
     {"children": [ChildRecord(CHILD, ["Email"]), ChildRecord(OTHER_CHILD, ["Email"])]},
     f"field Email is named twice (child record {CHILD} and child record {OTHER_CHILD})"),
    ("field in child and master",
     {"children": [ChildRecord(CHILD, ["Email"])], "master_record_fields": ["Email"]},
     f"field Email is named twice (child record {CHILD} and master_record_fields)"),
    ("field twice in master", {"children": [CHILD], "master_record_fields": ["Email", "Email"]},
     "field Email is named twice in master_record_fields"),
    ("master fields as str", {"children": [CHILD], "master_record_fields": "Email"},
     "invalid master_record_fields 'Email'"),
    ("bad field name", {"children": [CHILD], "master_record_fields": ["First Name"]},
     "invalid field API name 'First Name'"),
    ("too many fields", {"children": [CHILD],
                         "master_record_fields": [f"Field_{index}" for index in range(101)]},
     "101 master_record_fields given: Zoho accepts at most 100"),
    ("bad master id", {"master_record_id": "abc"}, "invalid master_record_id 'abc'"),
    ("bad module", {"module": "Leads/1"}, "invalid module 'Leads/1'"),
]


@pytest.mark.parametrize(("case", "overrides", "expected"), REJECTED_ARGUMENTS,
                         ids=[case for case, _, _ in REJECTED_ARGUMENTS])
async def test_invalid_input_not_sent(mocked: aioresponses, make_client: ClientFactory,
                                      case: str, overrides: dict[str, Any],
                                      expected: str) -> None:
    arguments: dict[str, Any] = {"module": MODULE, "master_record_id": RECORD_ID,
                                 "children": [CHILD]}
    arguments.update(overrides)

    with pytest.raises(ValueError, match=re.escape(expected)):
        await make_client().merge_records(**arguments)

    assert request_count(mocked) == 0


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"api_name": "Photo", "attachment_ids": "123"}, "pass a list of ids, or None"),
    ({"api_name": "Photo", "attachment_ids": ["1", "1"]}, "attachment id 1 is given twice"),
    ({"api_name": "Photo", "attachment_ids": [str(n) for n in range(1, 52)]},
     "51 attachment_ids of field Photo given: Zoho accepts at most 50"),
    ({"api_name": "Photo", "attachment_ids": ["x1"]}, "invalid attachment id 'x1'"),
    ({"api_name": ""}, "invalid field API name ''"),
    ({"api_name": "A" * 101}, "at most 100 characters"),
])
def test_merge_field_rejects(arguments: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        MergeField(**arguments)


def test_child_record_rejects_repeat() -> None:
    with pytest.raises(ValueError, match=f"field Email is named twice in fields of child "
                                         f"record {CHILD}"):
        ChildRecord(CHILD, ["Email", MergeField("Email")])


async def test_bad_timeout_not_sent(mocked: aioresponses, make_client: ClientFactory) -> None:
    with pytest.raises(ValueError, match="invalid timeout -1"):
        await make_client().merge_and_wait(MODULE, RECORD_ID, [CHILD], timeout=-1)

    assert request_count(mocked) == 0


# Answers


async def test_merged_result(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.post(merge_url(), status=201, payload=merged_body())

    result = await make_client().merge_records(MODULE, RECORD_ID, [CHILD, OTHER_CHILD])

    assert result == MergeResult(MergeOutcome.MERGED, MODULE, RECORD_ID, (CHILD, OTHER_CHILD),
                                 None, "The records has been merged successfully")


async def test_scheduled_result(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.post(merge_url(), status=201, payload=scheduled_body())

    result = await make_client().merge_records(MODULE, RECORD_ID, [CHILD])

    assert result.outcome is MergeOutcome.SCHEDULED
    assert result.job_id == JOB_ID


async def test_numeric_job_id_read(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.post(merge_url(), status=200, payload=scheduled_body(int(JOB_ID)))  # type: ignore[arg-type]

    result = await make_client().merge_records(MODULE, RECORD_ID, [CHILD])

    assert result.job_id == JOB_ID


async def test_immediate_merge_not_polled(mocked: aioresponses,
                                          make_client: ClientFactory) -> None:
    mocked.post(merge_url(), status=201, payload=merged_body())

    finished = await make_client().merge_and_wait(MODULE, RECORD_ID, [CHILD])

    assert finished.status is MergeStatus.COMPLETED
    assert finished.job_id is None
    assert request_count(mocked) == 1


async def test_scheduled_merge_polled(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.post(merge_url(), status=201, payload=scheduled_body())
    mocked.get(merge_url(JOB_ID), payload={"merge": [{"job_id": JOB_ID, "status": "running"}]})
    mocked.get(merge_url(JOB_ID), payload={"merge": [{"job_id": JOB_ID, "status": "failed"}]})

    finished = await make_client().merge_and_wait(MODULE, RECORD_ID, [CHILD])

    assert isinstance(finished, FinishedMerge)
    assert finished.status is MergeStatus.FAILURE
    assert finished.job_id == JOB_ID


# Errors


@pytest.mark.parametrize("envelope", ["top", "merge"])
@pytest.mark.parametrize("code", sorted(MERGE_ERRORS))
async def test_merge_error_typed(mocked: aioresponses, make_client: ClientFactory, code: str,
                                 envelope: str) -> None:
    details = {"api_name": "id", "json_path": "$.merge[0].data[0].id"}
    mocked.post(merge_url(), status=400, payload=error_body(code, envelope, "no", details))

    with pytest.raises(MERGE_ERRORS[code]) as raised:
        await make_client().merge_records(MODULE, RECORD_ID, [CHILD])

    assert raised.value.code == code
    assert raised.value.details == details
    assert request_count(mocked) == 1


@pytest.mark.parametrize(("status", "payload"), [
    (500, error_body("INTERNAL_ERROR", "merge")),
    (503, error_body("SERVICE_UNAVAILABLE")),
    (201, {"merge": [{"code": "SUCCESS", "details": {}, "status": "success"}]}),
    (201, {"merge": [{"code": "SUCCESS", "details": {"id": CHILD}, "status": "success"}]}),
    (201, {"merge": [{"code": "QUEUED", "details": {}, "status": "success"}]}),
    (201, {"data": []}),
])
async def test_unknown_outcome_not_retried(mocked: aioresponses, make_client: ClientFactory,
                                           status: int, payload: dict[str, Any]) -> None:
    mocked.post(merge_url(), status=status, payload=payload)

    with pytest.raises(MergeOutcomeUnknownError) as raised:
        await make_client().merge_records(MODULE, RECORD_ID, [CHILD])

    assert "may or may not have been done or scheduled" in str(raised.value)
    assert f"get_merge_jobs('Leads', '{RECORD_ID}')" in str(raised.value)
    assert request_count(mocked) == 1


async def test_unknown_outcome_chains_cause(mocked: aioresponses,
                                            make_client: ClientFactory) -> None:
    mocked.post(merge_url(), status=502, body="<html>Bad Gateway</html>")

    with pytest.raises(MergeOutcomeUnknownError) as raised:
        await make_client().merge_records(MODULE, RECORD_ID, [CHILD])

    assert isinstance(raised.value.__cause__, UnexpectedResponseError)
    assert raised.value.child_ids == [CHILD]


async def test_lost_connection_unknown(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.post(merge_url(), exception=aiohttp.ServerDisconnectedError())

    with pytest.raises(MergeOutcomeUnknownError) as raised:
        await make_client().merge_records(MODULE, RECORD_ID, [CHILD])

    assert isinstance(raised.value.__cause__, TransportError)


async def test_timeout_unknown(mocked: aioresponses, make_client: ClientFactory) -> None:
    mocked.post(merge_url(), exception=TimeoutError())

    with pytest.raises(MergeOutcomeUnknownError, match="request timeout"):
        await make_client().merge_records(MODULE, RECORD_ID, [CHILD])


async def test_refused_connection_plain(make_client: ClientFactory) -> None:
    # A port that was just bound and released has no listener, so the connection is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(api_domain=f"http://127.0.0.1:{port}")

    with pytest.raises(TransportError) as raised:
        await client.merge_records(MODULE, RECORD_ID, [CHILD])

    assert not isinstance(raised.value, MergeOutcomeUnknownError)
    assert isinstance(raised.value.__cause__, aiohttp.ClientConnectorError)


@pytest.mark.parametrize(("status", "code", "error_class"), [
    (429, "TOO_MANY_REQUESTS", RateLimitError),
    (401, "INVALID_TOKEN", InvalidTokenError),
])
async def test_rejected_request_plain(mocked: aioresponses, make_client: ClientFactory,
                                      status: int, code: str,
                                      error_class: type[ZohoAPIError]) -> None:
    mocked.post(merge_url(), status=status, payload=error_body(code))

    with pytest.raises(error_class):
        await make_client().merge_records(MODULE, RECORD_ID, [CHILD])


def test_unknown_outcome_pickles() -> None:
    error = MergeOutcomeUnknownError(MODULE, RECORD_ID, [CHILD, OTHER_CHILD], "HTTP 500")

    restored = pickle.loads(pickle.dumps(error))

    assert isinstance(restored, MergeOutcomeUnknownError)
    assert restored.child_ids == [CHILD, OTHER_CHILD]
    assert str(restored) == str(error)
