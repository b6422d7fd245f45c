"""Translation of a merge-status HTTP response into jobs or a typed error.

The shapes follow Zoho's "Get Records Merge Status" reference: a 200 response is
``{"merge": [{"job_id": "...", "status": "..."}]}``, a 204 has no body, and an
error comes either at the top level (``{"code": ..., "status": "error"}``) or
as the first item of the ``merge`` or ``data`` array.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from yarl import URL

from ._errors import MergeJobNotFoundError, UnexpectedResponseError, api_error
from ._models import MergeJob, MergeStatus

MAX_BODY_BYTES = 1024 * 1024
"""Largest response body read, in bytes. A real response lists at most 100 jobs, a few KiB."""

EXCERPT_CHARS = 200
"""Characters of an unexpected body kept in `UnexpectedResponseError.body_excerpt`."""

LISTED_JOB_IDS = 5
"""Job ids named in an error about a response that lacks the requested job."""

MAX_RETRY_AFTER = 86400.0
"""Largest Retry-After value kept, in seconds; a larger one is cut to a day."""

_NOT_JSON = object()

_EXACT_SPELLINGS: dict[str, MergeStatus] = {status.value: status for status in MergeStatus}
"""Status spellings of Zoho's reference pages, looked up without changing letter case."""


def excerpt(body: bytes) -> str:
    """Return the start of `body` as text, for error messages."""
    return body[:EXCERPT_CHARS].decode("utf-8", errors="replace")


def parse_merge_response(
    http_status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    module: str,
    master_record_id: str,
    job_id: str | None,
) -> list[MergeJob]:
    """Return the jobs in a merge-status response, or raise the matching `ZohoError`.

    With `job_id`, the list contains exactly that job. Without it, the list contains
    every job Zoho listed, and is empty for a 204.
    """
    if http_status == 204:
        if job_id is not None:
            raise MergeJobNotFoundError(module, master_record_id, job_id)
        return []
    payload = _decode_json(body)
    if http_status == 200 and job_id is not None:
        job = _read_single_job(payload, job_id)
        if job is not None:
            return [job]
    payload = _checked_payload(http_status, headers, body, payload)
    jobs = _read_jobs(payload, http_status, body)
    if job_id is None:
        return jobs
    for job in jobs:
        if job.job_id == job_id:
            return [job]
    raise UnexpectedResponseError(
        f"asked for job {job_id} but Zoho reported {_list_job_ids(jobs)}", http_status,
        excerpt(body))


def _read_single_job(payload: Any, job_id: str) -> MergeJob | None:
    """Return the job of a payload that is exactly ``{"merge": [job]}`` with `job_id`, else None.

    This is the usual response to a status request, and reading it here takes
    fewer steps than the general path. A payload of any other shape returns
    None, and the general path then checks it, error envelopes first. A
    payload with no key but "merge", whose job has a known status rather than
    "error", cannot be an error envelope.
    """
    if type(payload) is not dict or len(payload) != 1:
        return None
    items = payload.get("merge")
    if type(items) is not list or len(items) != 1:
        return None
    item = items[0]
    if type(item) is not dict or item.get("job_id") != job_id:
        return None
    raw_status = item.get("status")
    # A list or object as status cannot be a key, so only a str is looked up.
    status = _EXACT_SPELLINGS.get(raw_status) if type(raw_status) is str else None
    return None if status is None else MergeJob(job_id, status)


def _list_job_ids(jobs: list[MergeJob]) -> str:
    """Name the first `LISTED_JOB_IDS` job ids, and how many more there are."""
    first_ids = ", ".join(job.job_id for job in jobs[:LISTED_JOB_IDS])
    if len(jobs) <= LISTED_JOB_IDS:
        return f"job {first_ids}" if len(jobs) == 1 else f"jobs {first_ids}"
    return f"{len(jobs)} jobs ({first_ids} and {len(jobs) - LISTED_JOB_IDS} more)"


def read_success_payload(http_status: int, headers: Mapping[str, str], body: bytes) -> Any:
    """Return the decoded JSON of a 2xx response, or raise the matching `ZohoError`.

    Zoho's error envelopes are read first, so an error code wins over the
    HTTP status. A redirect is never followed.
    """
    return _checked_payload(http_status, headers, body, _decode_json(body))


def _checked_payload(http_status: int, headers: Mapping[str, str], body: bytes,
                     payload: Any) -> Any:
    """Return `payload`, the decoded `body`, for a 2xx response; else raise the matching error."""
    if 300 <= http_status < 400:
        raise _redirect_error(http_status, headers, body)

    _raise_for_error_envelope(http_status, headers, payload, body)
    if not 200 <= http_status < 300:
        raise UnexpectedResponseError("an error status without a Zoho error body",
                                      http_status, excerpt(body))
    if payload is _NOT_JSON:
        raise UnexpectedResponseError("the body is not JSON", http_status, excerpt(body))
    return payload


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Convert a Retry-After header (seconds, or an HTTP date) into seconds from now.

    Returns None for a missing or unreadable header; a date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(value)
        if moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def _decode_json(body: bytes) -> Any:
    if not body:
        return _NOT_JSON
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _NOT_JSON


def _raise_for_error_envelope(http_status: int, headers: Mapping[str, str], payload: Any,
                              body: bytes) -> None:
    retry_after = parse_retry_after(headers.get("Retry-After"))
    error = _find_error(payload)
    if error is not None:
        code, message, details = error
        raise api_error(code, http_status, message, details, retry_after)
    if http_status == 429:
        # A gateway can send 429 without Zoho's JSON body, and it is still the rate limit.
        raise api_error("TOO_MANY_REQUESTS", http_status, excerpt(body), None, retry_after)


def _find_error(payload: Any) -> tuple[str, str, dict[str, Any]] | None:
    if not isinstance(payload, dict):
        return None
    candidates: list[Any] = [payload]
    for key in ("merge", "data"):
        items = payload.get(key)
        if isinstance(items, list):
            candidates.extend(items)
    for item in candidates:
        if isinstance(item, dict) and item.get("status") == "error" \
                and isinstance(item.get("code"), str):
            message = item.get("message")
            details = item.get("details")
            return (
                item["code"],
                message if isinstance(message, str) else "",
                details if isinstance(details, dict) else {},
            )
    return None


def _read_jobs(payload: Any, http_status: int, body: bytes) -> list[MergeJob]:
    items = payload.get("merge") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise UnexpectedResponseError("expected a non-empty 'merge' array", http_status,
                                      excerpt(body))
    jobs = []
    for item in items:
        if not isinstance(item, dict):
            raise UnexpectedResponseError("a 'merge' item is not an object", http_status,
                                          excerpt(body))
        job_id = item.get("job_id")
        if not isinstance(job_id, str) or not (job_id.isascii() and job_id.isdigit()):
            raise UnexpectedResponseError(f"job_id {job_id!r} is not a string of digits",
                                          http_status, excerpt(body))
        raw_status = item.get("status")
        try:
            status = MergeStatus.parse(raw_status)
        except ValueError:
            raise UnexpectedResponseError(f"unknown merge status {raw_status!r}", http_status,
                                          excerpt(body)) from None
        jobs.append(MergeJob(job_id=job_id, status=status))
    return jobs


def _redirect_error(http_status: int, headers: Mapping[str, str],
                    body: bytes) -> UnexpectedResponseError:
    location = headers.get("Location", "")
    try:
        host = URL(location).host or "the same host"
    except (ValueError, TypeError):
        host = "an unreadable location"
    return UnexpectedResponseError(
        f"redirect to {host} was not followed, so the access token was not sent there; "
        "check api_domain", http_status, excerpt(body))
