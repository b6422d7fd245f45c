"""Error messages: the last error of a timed-out wait, capped server text, zero ids."""

from __future__ import annotations

import pickle

import pytest
from aioresponses import aioresponses
from clock_limiter import ClockJumpLimiter
from conftest import JOB_ID, MODULE, RECORD_ID, ClientFactory, FakeClock, merge_url, request_count

from zoho_merge_async import (
    MergeTimeoutError,
    RefreshRateLimitError,
    TransportError,
    UnexpectedResponseError,
    ZohoAPIError,
    wait_for_merge,
)
from zoho_merge_async._errors import summarize_error

# The last error of a timed-out wait


async def test_timeout_names_last_error(mocked: aioresponses, make_client: ClientFactory,
                                        clock: FakeClock) -> None:
    client = make_client(limiter=ClockJumpLimiter(clock, jump=20.0))

    with pytest.raises(MergeTimeoutError) as raised:
        await wait_for_merge(client, MODULE, RECORD_ID, JOB_ID, timeout=10.0)

    message = str(raised.value)
    assert "after 20.0 s and 0 polls" in message
    assert "(last error: TransportError: GET " in message
    assert "was not sent: the deadline had passed" in message
    assert raised.value.last_error.startswith("TransportError: ")
    assert request_count(mocked) == 0


def test_timeout_without_error_unchanged() -> None:
    error = MergeTimeoutError(JOB_ID, None, 2.0, 0)

    assert str(error) == (f"merge job {JOB_ID} was still unknown after 2.0 s and 0 polls; "
                          "raise the timeout or resume the wait later")


def test_error_summary_capped() -> None:
    summary = summarize_error(TransportError("x" * 1000))

    assert summary.startswith("TransportError: xxx")
    assert summary.endswith("…")
    assert len(summary) == len("TransportError: ") + 200


def test_timeout_last_error_pickles() -> None:
    error = MergeTimeoutError(None, None, 2.0, 0, "TransportError: connection refused")

    restored = pickle.loads(pickle.dumps(error))

    assert isinstance(restored, MergeTimeoutError)
    assert restored.last_error == "TransportError: connection refused"
    assert str(restored) == str(error)


# Server text


def test_refresh_description_one_period() -> None:
    description = "You have made too many requests continuously. Please try again after some time."

    error = RefreshRateLimitError("Access Denied", description)

    assert "after some time. A refresh token" in str(error)
    assert ".." not in str(error)
    assert error.description == description


def test_long_message_capped() -> None:
    error = ZohoAPIError("INVALID_DATA", 400, "m" * 5000, {"api_name": "d" * 5000})

    text = str(error)
    assert len(text) < 800
    assert text.count("…") == 2
    assert error.message == "m" * 5000
    assert error.details == {"api_name": "d" * 5000}


def test_short_message_whole() -> None:
    error = ZohoAPIError("INVALID_DATA", 400, "the id given seems to be invalid",
                         {"api_name": "id"})

    assert str(error) == ("Zoho returned INVALID_DATA (HTTP 400): the id given seems to be "
                          "invalid {'api_name': 'id'}")


async def test_missing_job_lists_few_ids(mocked: aioresponses,
                                         make_client: ClientFactory) -> None:
    listed = [{"job_id": str(2423488000000600000 + index), "status": "RUNNING"}
              for index in range(100)]
    mocked.get(merge_url(JOB_ID), payload={"merge": listed})

    with pytest.raises(UnexpectedResponseError) as raised:
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    reason = raised.value.reason
    assert reason.startswith(f"asked for job {JOB_ID} but Zoho reported 100 jobs (")
    assert reason.endswith("2423488000000600004 and 95 more)")
    assert "2423488000000600005" not in reason


async def test_missing_job_one_other(mocked: aioresponses, make_client: ClientFactory) -> None:
    other = "2423488000000600000"
    mocked.get(merge_url(JOB_ID), payload={"merge": [{"job_id": other, "status": "RUNNING"}]})

    with pytest.raises(UnexpectedResponseError) as raised:
        await make_client().get_merge_status(MODULE, RECORD_ID, JOB_ID)

    assert raised.value.reason == f"asked for job {JOB_ID} but Zoho reported job {other}"


# Zero ids


@pytest.mark.parametrize("value", [0, "0", "000"])
async def test_zero_id_rejected(mocked: aioresponses, make_client: ClientFactory,
                                value: str | int) -> None:
    with pytest.raises(ValueError, match="invalid master_record_id"):
        await make_client().get_merge_status(MODULE, value, JOB_ID)

    assert request_count(mocked) == 0


async def test_zero_job_id_rejected(mocked: aioresponses, make_client: ClientFactory) -> None:
    with pytest.raises(ValueError, match="invalid job_id '00'"):
        await make_client().get_merge_status(MODULE, RECORD_ID, "00")

    assert request_count(mocked) == 0
