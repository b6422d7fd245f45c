"""Merge Records on `FakeZohoServer`: the records, the POST handler and its scripted failures.

The handler checks a request the way Zoho CRM API "Merge Records" documents it, with
the error codes, messages and `details` of the `mergeRecords` examples in Zoho's
OpenAPI repository zoho/crm-oas (`v8.0/find_and_merge`). A merge in which a child
record has more than `LARGE_MERGE_RELATED_RECORDS` related records is scheduled as a
job, as Zoho does. Any other merge is done at once and deletes the child records.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from aiohttp import web

from .testing import (
    RawReply,
    StatusReply,
    Step,
    ZohoErrorReply,
    _error_response,
    _is_digits,
    _Job,
    _parse_script,
    _raw_response,
    _Reply,
    _running_loop_time,
)

if TYPE_CHECKING:
    from .testing import FakeZohoServer

LARGE_MERGE_RELATED_RECORDS = 1000
"""A merge is scheduled when a child record has more related records than this."""

DEFAULT_JOB_STEPS: tuple[Step, ...] = ("SCHEDULED", "RUNNING", "COMPLETED")
"""Status steps of a scheduled merge job that no `script_job` call scripted."""

_MAX_CHILDREN = 2
_FINISHED_STATUSES = frozenset({"COMPLETED", "FAILURE", "FAILED"})
_NOT_ALLOWED_MESSAGE = "This record id is not allowed to be merged"

# The `statuses` and `timeline` arguments of one `script_job` call.
_Script: TypeAlias = tuple[Sequence[Step] | None, Sequence[tuple[float, Step]] | None]


class _Rejected(Exception):
    """Rejection of a request: it stops the checks, and the server sends `reply`."""

    def __init__(self, reply: ZohoErrorReply) -> None:
        super().__init__(reply.code)
        self.reply = reply


def _reject(code: str, message: str, details: Mapping[str, object] | None = None, *,
            top: bool = False) -> _Rejected:
    return _Rejected(ZohoErrorReply(code, message=message, details=details or {},
                                    envelope="top" if top else "merge"))


@dataclass(slots=True)
class _Record:
    related_records: int


@dataclass(frozen=True, slots=True)
class _ScheduledMerge:
    job_id: str
    module: str
    master_record_id: str
    child_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _MergeBody:
    child_ids: tuple[str, ...]
    child_paths: tuple[str, ...]
    """JSON path of each child's `id`, for error details."""


class FakeMergeRecords:
    """Records of a `FakeZohoServer` and its Merge Records endpoint, as `server.merges`.

    Only records added with `add_record` can be merged. A test decides how a
    merge runs through `related_records`: a merge is scheduled as a job when
    a child has more than `LARGE_MERGE_RELATED_RECORDS`, and done at once
    otherwise. A scheduled job reports the steps given to `script_job` for its
    master record, else `DEFAULT_JOB_STEPS`. While a job is not finished, its
    master and child records are rejected with NOT_ALLOWED; when it ends
    COMPLETED, the child records are deleted. A job scripted with steps ends
    when it has reported COMPLETED, FAILURE or FAILED; one on a timeline ends
    at that time.

    NOTE: Zoho does not document the order of its checks, and the fake has
    no field types, so it never sends DEPENDENT_FIELD_MISSING, LIMIT_EXCEEDED
    or the Deals-only NOT_ALLOWED errors unless `fail_next` scripts them.
    """

    def __init__(self, server: FakeZohoServer) -> None:
        self._server = server
        self._records: dict[tuple[str, str], _Record] = {}
        self._failures: deque[ZohoErrorReply | RawReply] = deque()
        self._scripts: dict[tuple[str, str], _Script] = {}
        self._scheduled: list[_ScheduledMerge] = []

    def add_record(self, module: str, record_id: str, *, related_records: int = 0) -> None:
        """Create a record that can be merged, with `related_records` records in related lists.

        Raises ValueError for an unknown module, a non-digit id or a negative count.
        """
        self._server._validate_job_location(module, record_id)
        if isinstance(related_records, bool) or not isinstance(related_records, int) \
                or related_records < 0:
            raise ValueError(f"related_records must be a whole number >= 0, got "
                             f"{related_records!r}")
        self._records[(module, record_id)] = _Record(related_records)

    def has_record(self, module: str, record_id: str) -> bool:
        """Tell whether the record exists: added and not deleted by a finished merge."""
        self._settle(_running_loop_time())
        return (module, record_id) in self._records

    def fail_next(self, *replies: ZohoErrorReply | RawReply) -> None:
        """Send these replies, in order, to the next merge requests instead of merging."""
        for reply in replies:
            if not isinstance(reply, ZohoErrorReply | RawReply):
                raise TypeError(f"a reply must be a ZohoErrorReply or RawReply, got "
                                f"{type(reply).__name__}")
        self._failures.extend(replies)

    def script_job(
        self,
        module: str,
        master_record_id: str,
        statuses: Sequence[Step] | None = None,
        *,
        timeline: Sequence[tuple[float, Step]] | None = None,
    ) -> None:
        """Script the next merge job scheduled for this master record, as `add_job` takes it."""
        _parse_script(statuses, timeline)
        self._server._validate_job_location(module, master_record_id)
        self._scripts[(module, master_record_id)] = (statuses, timeline)

    async def handle_post(self, request: web.Request, module: str,
                          master_record_id: str) -> web.Response:
        """Handle one Merge Records request: send a scripted failure, an error, or merge."""
        if self._failures:
            reply = self._failures.popleft()
            if reply.delay > 0:
                await asyncio.sleep(reply.delay)
            if isinstance(reply, RawReply):
                return _raw_response(reply)
            return _error_response(reply)

        self._settle(asyncio.get_running_loop().time())
        try:
            body = _read_body(await request.read(), master_record_id)
            self._check_records(module, master_record_id, body)
        except _Rejected as rejected:
            return _error_response(rejected.reply)

        if any(self._records[(module, child)].related_records > LARGE_MERGE_RELATED_RECORDS
               for child in body.child_ids):
            job_id = self._schedule(module, master_record_id, body.child_ids)
            return _success("SCHEDULED", {"job_id": job_id},
                            "The records have been scheduled in a scheduler")
        self._merge_now(module, master_record_id, body.child_ids)
        return _success("SUCCESS", {"id": master_record_id},
                        "The records has been merged successfully")

    def _check_records(self, module: str, master: str, body: _MergeBody) -> None:
        if (module, master) not in self._records:
            raise _reject("INVALID_DATA", "Master record id is not available",
                          {"resource_path_index": 1}, top=True)
        busy = self._busy_records(module)
        if master in busy:
            raise _reject("NOT_ALLOWED", _NOT_ALLOWED_MESSAGE, {"resource_path_index": 1},
                          top=True)
        for child, path in zip(body.child_ids, body.child_paths, strict=True):
            details = {"api_name": "id", "json_path": path}
            if (module, child) not in self._records:
                raise _reject("INVALID_DATA", "the id given seems to be invalid", details)
            if child in busy:
                raise _reject("NOT_ALLOWED", _NOT_ALLOWED_MESSAGE, details)

    def _busy_records(self, module: str) -> set[str]:
        """Return the ids of the module's records that are in an unfinished merge job."""
        now = asyncio.get_running_loop().time()
        jobs = self._server._jobs
        busy = {job.master_record_id for job in jobs.values()
                if job.module == module and not _is_finished(job, now)}
        for merge in self._scheduled:
            job = jobs.get(merge.job_id)
            if merge.module == module and job is not None and not _is_finished(job, now):
                busy.update(merge.child_ids)
        return busy

    def _schedule(self, module: str, master: str, child_ids: tuple[str, ...]) -> str:
        statuses, timeline = self._scripts.pop((module, master), (DEFAULT_JOB_STEPS, None))
        job_id = self._server.add_job(module, master, statuses, timeline=timeline)
        self._scheduled.append(_ScheduledMerge(job_id, module, master, child_ids))
        return job_id

    def _merge_now(self, module: str, master: str, child_ids: Sequence[str]) -> None:
        """Delete the child records and move their related records to the master."""
        for child in child_ids:
            removed = self._records.pop((module, child), None)
            master_record = self._records.get((module, master))
            if removed is not None and master_record is not None:
                master_record.related_records += removed.related_records

    def _settle(self, now: float | None) -> None:
        """Apply the scheduled merges whose jobs ended: delete the children of COMPLETED ones."""
        if now is None:
            return
        pending = []
        for merge in self._scheduled:
            job = self._server._jobs.get(merge.job_id)
            if job is None or not _is_finished(job, now):
                pending.append(merge)
            elif _reply_status(job.current_reply(now)) == "COMPLETED":
                self._merge_now(merge.module, merge.master_record_id, merge.child_ids)
        self._scheduled = pending


def _success(code: str, details: dict[str, str], message: str) -> web.Response:
    answer = {"code": code, "details": details, "message": message, "status": "success"}
    return web.json_response({"merge": [answer]}, status=201)


def _reply_status(reply: _Reply) -> str | None:
    return reply.status.upper() if isinstance(reply, StatusReply) else None


def _is_finished(job: _Job, now: float) -> bool:
    if job.offsets is None and job.polls == 0:
        return False
    return _reply_status(job.current_reply(now)) in _FINISHED_STATUSES


def _read_body(raw: bytes, master: str) -> _MergeBody:
    """Check the request body's shape, ids and fields, raising `_Rejected` at the first error."""
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _reject("INVALID_DATA", "the request body is not valid JSON", top=True) from None
    merge = payload.get("merge") if isinstance(payload, dict) else None
    if merge is None:
        raise _reject("MANDATORY_NOT_FOUND", "required field not found",
                      {"api_name": "merge", "json_path": "$.merge"}, top=True)
    if not isinstance(merge, list) or len(merge) != 1 or not isinstance(merge[0], dict):
        raise _reject("INVALID_DATA", "invalid data", top=True)

    item = merge[0]
    data = item.get("data")
    data_details = {"api_name": "data", "json_path": "$.merge[0].data"}
    if not isinstance(data, list) or not data:
        raise _reject("INVALID_DATA", " Atleast one child record id is required to be merged.",
                      {**data_details, "minimum_length": 1})
    if len(data) > _MAX_CHILDREN:
        raise _reject("INVALID_DATA", " More than 2 child record ids cannot be merged.",
                      {**data_details, "maximum_length": _MAX_CHILDREN})

    field_names: set[str] = set()
    child_ids: list[str] = []
    paths: list[str] = []
    for index, child in enumerate(data):
        path = f"$.merge[0].data[{index}]"
        child_ids.append(_read_child_id(child, path, master, child_ids))
        paths.append(f"{path}.id")
        _read_fields(child.get("_fields", []), f"{path}._fields", field_names,
                     "API name of the field is not mentioned")
    _read_fields(item.get("master_record_fields", []), "$.merge[0].master_record_fields",
                 field_names, "API name not mentioned for the master record")
    return _MergeBody(tuple(child_ids), tuple(paths))


def _read_child_id(child: object, path: str, master: str, earlier: list[str]) -> str:
    if not isinstance(child, dict):
        raise _reject("INVALID_DATA", "invalid data", {"api_name": "data", "json_path": path})
    details = {"api_name": "id", "json_path": f"{path}.id"}
    record_id = _read_id(child.get("id"), details)
    if record_id == master or record_id in earlier:
        raise _reject("DUPLICATE_DATA", "Valid record ids need to be given for merging",
                      details)
    return record_id


def _read_fields(fields: object, path: str, seen: set[str], missing_message: str) -> None:
    """Check a `_fields` or `master_record_fields` array. A field may occur once in the body."""
    if not isinstance(fields, list):
        raise _reject("INVALID_DATA", "invalid data", {"api_name": path.rsplit(".", 1)[-1],
                                                       "json_path": path})
    for index, field in enumerate(fields):
        field_path = f"{path}[{index}]"
        if not isinstance(field, dict):
            field = {}
        name = field.get("api_name")
        details = {"api_name": "api_name", "json_path": f"{field_path}.api_name"}
        if not isinstance(name, str) or not name:
            raise _reject("MANDATORY_NOT_FOUND", missing_message, details)
        if name in seen:
            raise _reject("DUPLICATE_DATA", "When one field is mentioned more than once",
                          details)
        seen.add(name)
        _read_attachments(field.get("_data", []), f"{field_path}._data")


def _read_attachments(attachments: object, path: str) -> None:
    """Check a `_data` value: null (delete every file) or a list of `{"id": "<digits>"}`."""
    if attachments is None:
        return
    if not isinstance(attachments, list):
        raise _reject("INVALID_DATA", "invalid data", {"api_name": "_data", "json_path": path})
    for index, attachment in enumerate(attachments):
        value = attachment.get("id") if isinstance(attachment, dict) else None
        _read_id(value, {"api_name": "id", "json_path": f"{path}[{index}].id"})


def _read_id(value: object, details: Mapping[str, object]) -> str:
    """Return an id sent as a digit string or, as Zoho's own SDKs send it, as a JSON number."""
    if value is None:
        raise _reject("MANDATORY_NOT_FOUND", "required id not found", details)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if not isinstance(value, str) or not _is_digits(value):
        raise _reject("INVALID_DATA", "the id given seems to be invalid", details)
    return value
