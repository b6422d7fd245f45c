"""Starting a merge with Zoho's Merge Records call, and waiting for the job it schedules.

`POST /crm/{version}/{module}/{master_record_id}/actions/merge` either merges at
once (HTTP 201, `code` SUCCESS, `details.id` = the master record id) or, when a
child record has more than 1000 records in a related list, schedules a
background job (`code` SCHEDULED, `details.job_id`). Sources: Zoho CRM API
"Merge Records" (v6 to v8) and the `mergeRecords` examples in Zoho's OpenAPI
repository zoho/crm-oas (`v8.0/find_and_merge`).

The POST is never retried: Zoho does not make it idempotent, so a second
request after a lost response could merge twice.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import (
    InternalError,
    MergeOutcomeUnknownError,
    MergeTimeoutError,
    TransportError,
    UnexpectedResponseError,
    ZohoAPIError,
    ZohoError,
)
from ._merge_request import ChildRecord, MergeField, MergeRequest, build_merge_request
from ._models import MergeStatus
from ._policy import PollPolicy
from ._progress import StatusCallback
from ._response import excerpt, read_success_payload
from ._validation import check_id, check_module
from ._wait import resolve_timeout, wait_for_merge

if TYPE_CHECKING:
    from ._client import MergeClient

logger = logging.getLogger("zoho_merge_async")

ChildArgument = str | int | ChildRecord
"""A child record given to `merge_records`: its id, or a `ChildRecord` with fields."""


class MergeOutcome(enum.Enum):
    """Outcome of a Merge Records request: merged at once, or scheduled as a job."""

    MERGED = "MERGED"
    """Zoho merged the records at once (its code SUCCESS); the children are deleted."""
    SCHEDULED = "SCHEDULED"
    """Zoho scheduled a background merge job (its code SCHEDULED); see `MergeResult.job_id`."""


@dataclass(frozen=True, slots=True)
class MergeResult:
    """Zoho's response to a Merge Records request."""

    outcome: MergeOutcome
    module: str
    master_record_id: str
    child_ids: tuple[str, ...]
    job_id: str | None
    """Id of the background merge job when `outcome` is SCHEDULED, else None."""
    message: str
    """Zoho's own text, such as "The records have been scheduled in a scheduler"."""


@dataclass(frozen=True, slots=True)
class FinishedMerge:
    """Result of `merge_and_wait`: Zoho's response to the request and the merge's final status.

    `status` is COMPLETED for a merge done at once, and the job's final status
    (COMPLETED or FAILURE) for a scheduled one.
    """

    merge: MergeResult
    status: MergeStatus

    @property
    def job_id(self) -> str | None:
        """Id of the background merge job, or None if Zoho merged at once."""
        return self.merge.job_id


async def start_merge(
    client: MergeClient,
    module: str,
    master_record_id: str | int,
    children: Sequence[ChildArgument],
    master_record_fields: Sequence[str | MergeField],
    *,
    deadline: float | None = None,
) -> MergeResult:
    """Check the arguments, send one Merge Records request and return Zoho's response.

    Raises `ValueError` before sending for invalid input, the `ZohoAPIError`
    subclass of Zoho's error code, and `MergeOutcomeUnknownError` when the
    request failed in a way that may have merged. A request cut by `deadline`
    (on the client's clock) after it was sent counts as such a failure. An
    error before the request was sent, such as a failed token refresh or a
    deadline that passed first, is raised as it is.
    """
    module = check_module(module)
    master = check_id("master_record_id", master_record_id)
    request = build_merge_request(master, children, master_record_fields)
    url = client._merge_url(module, master)

    # Errors of getting a token or a request slot come before sending, so only
    # errors of the exchange itself and of its response may leave the outcome open.
    unknown_outcome = functools.partial(_unknown_outcome, module, request)
    response = await client._exchange("POST", url, json_body=request.to_json(),
                                      deadline=deadline, translate_send_error=unknown_outcome)
    try:
        result = parse_merge_records_response(response.status, response.headers, response.body,
                                              module=module, request=request)
    except ZohoError as exc:
        unknown = unknown_outcome(exc)
        if unknown is None:
            raise
        raise unknown from exc

    logger.debug("merge of %s records %s into %s: %s %s", module, ",".join(result.child_ids),
                 master, result.outcome.value, result.job_id or "")
    return result


async def merge_and_wait(
    client: MergeClient,
    module: str,
    master_record_id: str | int,
    children: Sequence[ChildArgument],
    *,
    master_record_fields: Sequence[str | MergeField] = (),
    policy: PollPolicy | None = None,
    timeout: float | None = None,
    on_status: StatusCallback | None = None,
) -> FinishedMerge:
    """Merge records and, if Zoho schedules the merge, wait until its job finishes.

    Sends one Merge Records request as `MergeClient.merge_records` does. A
    merge done at once returns at once with status COMPLETED. A scheduled merge
    is polled as `wait_for_merge` does, with `policy` (the client's `poll`
    policy by default), and its final status is returned: a FAILURE is
    returned, not raised.

    `timeout` in seconds (default `policy.timeout`, 600 s) covers the request
    and the wait together. At the deadline `MergeTimeoutError` is raised, and
    its `job_id` lets a later `wait_for_merge` resume. If the deadline passes
    before the request is sent (while a token is fetched, for example),
    `TransportError` is raised with `request_sent` False, and nothing was
    merged. `on_status` is passed to `wait_for_merge` for a scheduled merge
    and is not called for a merge done at once. Raises `ValueError` before
    sending for invalid input, `MergeOutcomeUnknownError` if the request may
    or may not have merged, and the errors of `wait_for_merge`.
    """
    policy = policy if policy is not None else client.poll_policy
    timeout = resolve_timeout(policy, timeout)

    started = client._clock()
    deadline = started + timeout
    result = await start_merge(client, module, master_record_id, children,
                               master_record_fields, deadline=deadline)
    if result.job_id is None:
        return FinishedMerge(result, MergeStatus.COMPLETED)
    return await _wait_for_job(client, result, result.job_id, policy, started, deadline,
                               on_status)


async def _wait_for_job(client: MergeClient, result: MergeResult, job_id: str,
                        policy: PollPolicy, started: float, deadline: float,
                        on_status: StatusCallback | None) -> FinishedMerge:
    """Wait for the job of a scheduled merge until `deadline` (on the client's clock)."""
    remaining = deadline - client._clock()
    if remaining <= 0:
        raise MergeTimeoutError(job_id, MergeStatus.SCHEDULED, client._clock() - started, 0)
    job = await wait_for_merge(client, result.module, result.master_record_id, job_id,
                               policy=policy, timeout=remaining, on_status=on_status)
    return FinishedMerge(result, job.status)


def parse_merge_records_response(
    http_status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    module: str,
    request: MergeRequest,
) -> MergeResult:
    """Return the outcome in a Merge Records response, or raise the matching `ZohoError`.

    Error bodies are read in both of Zoho's envelopes, as for a status request.
    """
    payload = read_success_payload(http_status, headers, body)

    answer = _first_merge_item(payload, http_status, body)
    return _read_result(answer, module, request, http_status, body)


def _read_result(answer: Mapping[str, Any], module: str, request: MergeRequest,
                 http_status: int, body: bytes) -> MergeResult:
    code = answer.get("code")
    details = answer.get("details")
    details = details if isinstance(details, dict) else {}
    message = answer.get("message")
    message = message if isinstance(message, str) else ""
    children = tuple(child.id for child in request.children)
    master = request.master_record_id

    if code == "SUCCESS":
        merged_id = _read_id(details, "id", http_status, body)
        if merged_id != master:
            raise UnexpectedResponseError(
                f"Zoho reported a merge into record {merged_id}, not {master}", http_status,
                excerpt(body))
        return MergeResult(MergeOutcome.MERGED, module, master, children, None, message)
    if code == "SCHEDULED":
        job_id = _read_id(details, "job_id", http_status, body)
        return MergeResult(MergeOutcome.SCHEDULED, module, master, children, job_id, message)
    raise UnexpectedResponseError(f"unknown merge response code {code!r}; expected SUCCESS or "
                                  "SCHEDULED", http_status, excerpt(body))


def _first_merge_item(payload: Any, http_status: int, body: bytes) -> dict[str, Any]:
    items = payload.get("merge") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise UnexpectedResponseError("expected a 'merge' array with one object", http_status,
                                      excerpt(body))
    item: dict[str, Any] = items[0]
    return item


def _read_id(details: Mapping[str, Any], key: str, http_status: int, body: bytes) -> str:
    value = details.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return value
    raise UnexpectedResponseError(f"details.{key} {value!r} is not a string of digits",
                                  http_status, excerpt(body))


def _unknown_outcome(module: str, request: MergeRequest,
                     error: ZohoError) -> MergeOutcomeUnknownError | None:
    """Return the `MergeOutcomeUnknownError` for an error that may have merged, else None."""
    if not _may_have_merged(error):
        return None
    child_ids = [child.id for child in request.children]
    return MergeOutcomeUnknownError(module, request.master_record_id, child_ids, str(error))


def _may_have_merged(error: ZohoError) -> bool:
    """Tell whether a failed merge request may still have reached Zoho and merged.

    A request that was never sent did not merge. Of the responses, an
    INTERNAL_ERROR or 5xx and a 2xx that cannot be read leave the outcome
    open, but a redirect and a 4xx without Zoho's error body do not.
    """
    if isinstance(error, TransportError):
        return error.request_sent
    if isinstance(error, ZohoAPIError):
        return isinstance(error, InternalError) or error.http_status >= 500
    if isinstance(error, UnexpectedResponseError):
        return 200 <= error.http_status < 300 or error.http_status >= 500
    return False
