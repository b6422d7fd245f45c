"""Fake Zoho CRM merge-status server for tests.

`FakeZohoServer` is a real aiohttp server on 127.0.0.1 that serves the
"Get Records Merge Status" endpoint (Zoho CRM API reference, v6 to v8) with
scripted replies, so a client can be tested over real TCP::

    async with FakeZohoServer(access_tokens=("test-token",)) as server:
        job_id = server.add_job("Leads", "2378988000000509963", ["RUNNING", "COMPLETED"])
        url = f"{server.api_domain}/crm/v8/Leads/2378988000000509963/actions/merge"
        headers = {"Authorization": "Zoho-oauthtoken test-token"}
        async with aiohttp.ClientSession() as session:
            async with session.get(url, params={"job_id": job_id}, headers=headers) as reply:
                assert (await reply.json())["merge"][0]["status"] == "RUNNING"

This module imports only the standard library and aiohttp.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self, TypeAlias

from aiohttp import web

from ._fake_oauth import TOKEN_PATH as OAUTH_TOKEN_PATH
from ._fake_oauth import FakeOAuthEndpoint, TokenRequest

__all__ = [
    "FakeOAuthEndpoint",
    "FakeZohoServer",
    "RawReply",
    "RecordedRequest",
    "StatusReply",
    "Step",
    "TokenRequest",
    "ZohoErrorReply",
]

_HOST = "127.0.0.1"
_DEFAULT_MODULES = ("Leads", "Contacts", "Accounts", "Deals", "Vendors")
_API_VERSIONS = frozenset({"v6", "v7", "v8"})
_MAX_LISTED_JOBS = 100
_AUTH_SCHEME = "Zoho-oauthtoken "
_MERGE_PATH = re.compile(
    r"/crm/(?P<version>[^/]+)/(?P<module>[^/]+)/(?P<record_id>[^/]+)/actions/merge"
)
_DIGITS = re.compile(r"[0-9]+")
_FIRST_GENERATED_JOB_ID = 2423488000000600001
# aiohttp can wait this many seconds twice when closing with a delayed reply pending, so
# close() returns within about 0.5 s (measured with aiohttp 3.14).
_SHUTDOWN_TIMEOUT = 0.25
# Room for bursts of new connections. aiohttp's default is 128, and Linux caps it at somaxconn.
_LISTEN_BACKLOG = 1024

# HTTP status and message per Zoho error code. The messages approximate Zoho's wording
# and may differ from the live API, so clients must decide on `code`, never on `message`.
_ERROR_DEFAULTS: dict[str, tuple[int, str]] = {
    "API_NOT_SUPPORTED": (400, "the API is not supported in this version"),
    "AUTHENTICATION_FAILURE": (401, "Authentication failed"),
    "DEPENDENT_FIELD_MISSING": (400, "dependent field missing"),
    "DUPLICATE_DATA": (400, "duplicate data"),
    "INTERNAL_ERROR": (500, "Internal Server Error"),
    "INVALID_DATA": (400, "invalid data"),
    "INVALID_HOST": (400, "invalid host"),
    "INVALID_MODULE": (400, "the module name given seems to be invalid"),
    "INVALID_OAUTHTOKEN": (401, "invalid oauth token"),
    "INVALID_REQUEST_METHOD": (400, "The http request method type is not a valid one"),
    "INVALID_TOKEN": (401, "invalid oauth token"),
    "INVALID_URL_PATTERN": (404, "Please check if the URL trying to access is a correct one"),
    "LIMIT_EXCEEDED": (400, "limit exceeded"),
    "MANDATORY_NOT_FOUND": (400, "required field not found"),
    "NOT_ALLOWED": (400, "This record id is not allowed to be merged"),
    "OAUTH_SCOPE_MISMATCH": (401, "invalid oauth scope to access this URL"),
    "TOO_MANY_REQUESTS": (429, "too many requests"),
}


def _validate_delay(delay: float) -> None:
    if not (math.isfinite(delay) and delay >= 0):
        raise ValueError(f"delay must be a finite number of seconds >= 0, got {delay!r}")


def _is_digits(text: str) -> bool:
    return _DIGITS.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class StatusReply:
    """Job status sent in a 200 reply, as given, after waiting `delay` seconds."""

    status: str
    delay: float = 0.0

    def __post_init__(self) -> None:
        _validate_delay(self.delay)


@dataclass(frozen=True, slots=True)
class ZohoErrorReply:
    """Zoho error object sent after waiting `delay` seconds.

    An `http_status` of 0 and an empty `message` take the usual values for `code`
    (400 and a generic message for codes outside the table). With the "top" envelope the
    error object is the body, and the "merge" envelope wraps it as `{"merge": [error]}`.
    `retry_after`, when set, is sent verbatim as the `Retry-After` header.
    """

    code: str
    http_status: int = 0
    message: str = ""
    details: Mapping[str, object] = field(default_factory=dict)
    envelope: Literal["top", "merge"] = "top"
    retry_after: str | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if not self.code:
            raise ValueError("code must be a non-empty Zoho error code, e.g. 'INTERNAL_ERROR'")
        if self.envelope not in ("top", "merge"):
            raise ValueError(f"envelope must be 'top' or 'merge', got {self.envelope!r}")
        _validate_delay(self.delay)

        default_status, default_message = _ERROR_DEFAULTS.get(
            self.code, (400, self.code.lower().replace("_", " "))
        )
        if self.http_status == 0:
            object.__setattr__(self, "http_status", default_status)
        if not 200 <= self.http_status <= 599:
            raise ValueError(f"http_status must be 200-599, got {self.http_status}")
        if not self.message:
            object.__setattr__(self, "message", default_message)
        object.__setattr__(self, "details", dict(self.details))


@dataclass(frozen=True, slots=True)
class RawReply:
    """HTTP reply sent exactly as given, after waiting `delay` seconds.

    A str body is encoded as UTF-8. `content_type` is sent as the Content-Type header
    whenever it is not None, on a 204 too, so pass None for a bare 204.
    NOTE: aiohttp adds `Content-Type: application/octet-stream` to a non-empty body
    sent without a content type.
    """

    status: int = 200
    body: bytes | str = b""
    content_type: str | None = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def __post_init__(self) -> None:
        if not 200 <= self.status <= 599:
            raise ValueError(f"status must be 200-599, got {self.status}")
        if self.status in (204, 304) and self.body:
            raise ValueError(f"a {self.status} reply cannot have a body, got {self.body!r}")
        computed = {"content-type", "content-length", "transfer-encoding"}
        for name in self.headers:
            if name.lower() in computed:
                raise ValueError(f"headers must not set {name}: use content_type and body")
        _validate_delay(self.delay)
        object.__setattr__(self, "headers", dict(self.headers))


# One scripted reply of a job: a status string or one of the reply classes.
Step: TypeAlias = str | StatusReply | ZohoErrorReply | RawReply
_Reply: TypeAlias = StatusReply | ZohoErrorReply | RawReply
_MergeHandler: TypeAlias = Callable[[web.Request, str, str], Awaitable[web.Response]]

_MISSING_AUTHORIZATION = ZohoErrorReply("AUTHENTICATION_FAILURE")
_BAD_URL = ZohoErrorReply("INVALID_URL_PATTERN")
_BAD_METHOD = ZohoErrorReply("INVALID_REQUEST_METHOD")
_BAD_MODULE = ZohoErrorReply("INVALID_MODULE", details={"resource_path_index": 0})
_BAD_RECORD_ID = ZohoErrorReply(
    "INVALID_DATA", message="the id given seems to be invalid", details={"resource_path_index": 1}
)
_BAD_JOB_ID = ZohoErrorReply("INVALID_DATA", details={"param_name": "job_id"})


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """Request received by `FakeZohoServer`, rejected ones included.

    `query` keeps the first value of each parameter and `query_string` the raw text.
    `headers` has lowercase names, and repeated headers are joined with ", ".
    `job_id` is the raw `job_id` parameter, even when invalid. `received_at` is the
    event loop's `time()` when the handler started. `body` is the raw request body.
    """

    method: str
    path: str
    query: dict[str, str]
    query_string: str
    headers: dict[str, str]
    job_id: str | None
    received_at: float
    body: bytes = b""


def _to_reply(step: Step) -> _Reply:
    if isinstance(step, str):
        return StatusReply(step)
    if isinstance(step, StatusReply | ZohoErrorReply | RawReply):
        return step
    raise TypeError(
        f"a step must be a str, StatusReply, ZohoErrorReply or RawReply, got {type(step).__name__}"
    )


def _parse_script(
    statuses: Sequence[Step] | None, timeline: Sequence[tuple[float, Step]] | None
) -> tuple[list[float] | None, list[_Reply]]:
    """Return the timeline offsets (None for a step sequence) and the replies."""
    if statuses is not None and timeline is not None:
        raise ValueError("give either statuses or timeline, not both")
    if timeline is not None:
        return _parse_timeline(timeline)
    if statuses is None:
        raise ValueError("missing steps: give statuses or timeline")
    if isinstance(statuses, str):
        raise TypeError(f"statuses must be a sequence of steps such as [{statuses!r}]")
    if not statuses:
        raise ValueError("statuses must contain at least one step")
    return None, [_to_reply(step) for step in statuses]


def _parse_timeline(
    timeline: Sequence[tuple[float, Step]],
) -> tuple[list[float] | None, list[_Reply]]:
    if not timeline:
        raise ValueError("timeline must contain at least one (seconds, step) entry")
    offsets = [float(seconds) for seconds, _ in timeline]
    if offsets[0] != 0.0:
        raise ValueError(f"timeline must start at 0.0 seconds, got {offsets[0]}")
    for earlier, later in itertools.pairwise(offsets):
        if not (math.isfinite(later) and later > earlier):
            raise ValueError(f"timeline times must increase strictly, got {earlier} then {later}")
    return offsets, [_to_reply(step) for _, step in timeline]


@dataclass(slots=True)
class _Job:
    job_id: str
    module: str
    master_record_id: str
    replies: list[_Reply]
    offsets: list[float] | None  # seconds since `started_at`, or None for a step sequence
    started_at: float | None
    polls: int = 0

    def next_reply(self, now: float) -> _Reply:
        """Consume and return the next step in the sequence, or the current one on the timeline."""
        self.polls += 1
        if self.offsets is not None and self.started_at is None:
            self.started_at = now
        return self.current_reply(now)

    def current_reply(self, now: float) -> _Reply:
        """Return the last step reported (the first before any poll), or the timeline's at `now`."""
        if self.offsets is None:
            return self.replies[max(min(self.polls, len(self.replies)) - 1, 0)]
        if self.started_at is None:
            return self.replies[0]
        index = bisect.bisect_right(self.offsets, now - self.started_at) - 1
        return self.replies[max(index, 0)]


def _running_loop_time() -> float | None:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return None


def _error_response(reply: ZohoErrorReply) -> web.Response:
    error = {
        "code": reply.code,
        "details": dict(reply.details),
        "message": reply.message,
        "status": "error",
    }
    payload = error if reply.envelope == "top" else {"merge": [error]}
    headers = {} if reply.retry_after is None else {"Retry-After": reply.retry_after}
    return web.json_response(payload, status=reply.http_status, headers=headers)


def _raw_response(reply: RawReply) -> web.Response:
    headers = dict(reply.headers)
    if reply.content_type is not None:
        headers["Content-Type"] = reply.content_type
    body = reply.body.encode() if isinstance(reply.body, str) else reply.body
    return web.Response(status=reply.status, body=body or None, headers=headers)


def _merge_status_response(jobs: list[_Job], replies: list[_Reply]) -> web.Response:
    """Build the reply for the listed jobs, or send their first error or raw step instead."""
    statuses: list[dict[str, str]] = []
    for job, reply in zip(jobs, replies, strict=True):
        if isinstance(reply, ZohoErrorReply):
            return _error_response(reply)
        if isinstance(reply, RawReply):
            return _raw_response(reply)
        statuses.append({"job_id": job.job_id, "status": reply.status})
    return web.json_response({"merge": statuses})


def _record(request: web.Request, now: float, body: bytes) -> RecordedRequest:
    query: dict[str, str] = {}
    for name, value in request.query.items():
        query.setdefault(name, value)
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return RecordedRequest(
        method=request.method,
        path=request.path,
        query=query,
        query_string=request.query_string,
        headers=headers,
        job_id=query.get("job_id"),
        received_at=now,
        body=body,
    )


class FakeZohoServer:
    """Zoho CRM merge-status endpoint on 127.0.0.1 that reports scripted merge jobs.

    Serves `GET /crm/{v6|v7|v8}/{module}/{master_record_id}/actions/merge[?job_id=...]`,
    and `POST` on the same path (Merge Records) for records added with
    `merges.add_record`: see `FakeMergeRecords`. `POST /oauth/v2/token` issues access
    tokens that expire, accepted besides `access_tokens`: see `FakeOAuthEndpoint`.
    Checks run in this order and the first failure is sent: authentication
    (AUTHENTICATION_FAILURE, INVALID_TOKEN), URL pattern (INVALID_URL_PATTERN), method
    (INVALID_REQUEST_METHOD), module (INVALID_MODULE), master record id and job_id
    (INVALID_DATA). NOTE: Zoho does not document the order of its own checks.
    Module names match case-sensitively, and unknown query parameters are ignored.

    `access_tokens` and `requests` are plain mutable attributes, so tests may revoke
    a token or inspect traffic at any time. `max_in_flight` is the peak number of
    requests handled at once. The server is not thread-safe: use it from its event loop.

    With `max_concurrency`, a merge-path request that arrives while that many are
    being handled gets 429 TOO_MANY_REQUESTS at once, before any other check, with
    `rate_limit_retry_after` (if set) sent verbatim as the Retry-After header, as
    Zoho does beyond an edition's concurrency limit. `rate_limited` counts those
    responses. Requests overlap only while replies are delayed (see `StatusReply.delay`).
    """

    def __init__(self, *, access_tokens: Iterable[str] = ("test-token",), port: int = 0,
                 max_concurrency: int | None = None,
                 rate_limit_retry_after: str | None = None) -> None:
        """Configure the server. With `port` 0, `start()` binds a free port."""
        if isinstance(access_tokens, str):
            raise TypeError("access_tokens must be an iterable of tokens, not a single str")
        if max_concurrency is not None and (
                isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int)
                or max_concurrency < 1):
            raise ValueError(f"max_concurrency must be None or a whole number of at least 1, "
                             f"got {max_concurrency!r}")
        self.access_tokens: set[str] = set(access_tokens)
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self.max_concurrency = max_concurrency
        self.rate_limit_retry_after = rate_limit_retry_after
        self.rate_limited = 0
        self._in_flight = 0
        self._port = port
        self._modules = set(_DEFAULT_MODULES)
        self._jobs: dict[str, _Job] = {}
        self._generated_ids = itertools.count(_FIRST_GENERATED_JOB_ID)
        self._runner: web.AppRunner | None = None
        self._api_domain: str | None = None
        # _fake_merge imports this module, so it is imported here rather than at the top.
        from ._fake_merge import FakeMergeRecords

        self.merges = FakeMergeRecords(self)
        """Records and the Merge Records (POST) endpoint: see `FakeMergeRecords`."""
        self.oauth = FakeOAuthEndpoint(self)
        """Zoho's OAuth token endpoint, which issues expiring tokens: see `FakeOAuthEndpoint`."""
        # Methods served on the merge path. Other methods get INVALID_REQUEST_METHOD.
        self._merge_handlers: dict[str, _MergeHandler] = {
            "GET": self._get_merge_status, "POST": self.merges.handle_post}

    @property
    def api_domain(self) -> str:
        """Base URL such as "http://127.0.0.1:PORT", to use as a Zoho API domain."""
        if self._api_domain is None:
            raise RuntimeError("FakeZohoServer is not running: call start() or use 'async with'")
        return self._api_domain

    async def start(self) -> None:
        """Bind 127.0.0.1 and start serving. Raise RuntimeError if already running."""
        if self._runner is not None:
            raise RuntimeError("FakeZohoServer is already running")

        app = web.Application()
        app.router.add_route("*", OAUTH_TOKEN_PATH, self.oauth.handle)
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, _HOST, self._port, backlog=_LISTEN_BACKLOG)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise

        self._runner = runner
        self._api_domain = f"http://{_HOST}:{runner.addresses[0][1]}"
        now = asyncio.get_running_loop().time()
        for job in self._jobs.values():
            if job.offsets is not None and job.started_at is None:
                job.started_at = now

    async def close(self) -> None:
        """Stop serving and release the port. Do nothing if not running."""
        runner, self._runner, self._api_domain = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def add_module(self, module: str) -> None:
        """Accept `module` (an API name such as "Custom_Module1") besides the standard ones."""
        if not module or "/" in module:
            raise ValueError(f"module must be a non-empty API name without '/', got {module!r}")
        self._modules.add(module)

    def add_job(
        self,
        module: str,
        master_record_id: str,
        statuses: Sequence[Step] | None = None,
        *,
        timeline: Sequence[tuple[float, Step]] | None = None,
        job_id: str | None = None,
    ) -> str:
        """Register a merge job and return its job id.

        With `statuses`, each request that reports the job consumes the next step and
        the last step repeats. With `timeline`, a list of `(seconds, step)` sorted by
        time and starting at 0.0, the job reports the step whose time has passed most
        recently. Its clock starts now if an event loop is running, else at `start()`.
        A generated job id has 19 digits. Raise ValueError unless exactly one of
        `statuses` and `timeline` is given and non-empty, for an unknown module, a
        non-digit id, or a job id already in use. Raise TypeError for a step of another
        type, or for a single str passed as `statuses`.
        """
        offsets, replies = _parse_script(statuses, timeline)
        self._validate_job_location(module, master_record_id)
        job_id = self._claim_job_id(job_id)

        self._jobs[job_id] = _Job(
            job_id, module, master_record_id, replies, offsets, _running_loop_time()
        )
        return job_id

    def reset_requests(self) -> None:
        """Forget recorded requests and restart the `max_in_flight` peak from now."""
        self.requests.clear()
        self.max_in_flight = self._in_flight

    def _validate_job_location(self, module: str, master_record_id: str) -> None:
        if module not in self._modules:
            raise ValueError(f"unknown module {module!r}: call add_module({module!r}) first")
        if not _is_digits(master_record_id):
            raise ValueError(f"master_record_id must be digits, got {master_record_id!r}")

    def _claim_job_id(self, job_id: str | None) -> str:
        if job_id is None:
            job_id = str(next(self._generated_ids))
            while job_id in self._jobs:
                job_id = str(next(self._generated_ids))
            return job_id
        if not _is_digits(job_id):
            raise ValueError(f"job_id must be digits, got {job_id!r}")
        if job_id in self._jobs:
            raise ValueError(f"job_id {job_id} is already in use")
        return job_id

    async def _handle(self, request: web.Request) -> web.Response:
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            now = asyncio.get_running_loop().time()
            self.requests.append(_record(request, now, await request.read()))
            if self.max_concurrency is not None and self._in_flight > self.max_concurrency:
                self.rate_limited += 1
                return _error_response(ZohoErrorReply(
                    "TOO_MANY_REQUESTS", retry_after=self.rate_limit_retry_after))
            return await self._dispatch(request)
        finally:
            self._in_flight -= 1

    async def _dispatch(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization")
        # NOTE: Zoho does not document its reply to another scheme such as "Bearer", so
        # this server treats it like a missing header.
        if authorization is None or not authorization.startswith(_AUTH_SCHEME):
            return _error_response(_MISSING_AUTHORIZATION)
        token = authorization.removeprefix(_AUTH_SCHEME)
        if token not in self.access_tokens:
            rejection = self.oauth.rejection_code(token)
            if rejection is not None:
                return _error_response(ZohoErrorReply(rejection))

        match = _MERGE_PATH.fullmatch(request.path)
        if match is None or match["version"] not in _API_VERSIONS:
            return _error_response(_BAD_URL)
        handler = self._merge_handlers.get(request.method)
        if handler is None:
            return _error_response(_BAD_METHOD)
        if match["module"] not in self._modules:
            return _error_response(_BAD_MODULE)
        if not _is_digits(match["record_id"]):
            return _error_response(_BAD_RECORD_ID)

        return await handler(request, match["module"], match["record_id"])

    def _find_jobs(self, module: str, master_record_id: str, job_id: str | None) -> list[_Job]:
        if job_id is not None:
            job = self._jobs.get(job_id)
            if job is None or (job.module, job.master_record_id) != (module, master_record_id):
                return []
            return [job]
        jobs = [
            job
            for job in self._jobs.values()
            if (job.module, job.master_record_id) == (module, master_record_id)
        ]
        return jobs[:_MAX_LISTED_JOBS]

    async def _get_merge_status(
        self, request: web.Request, module: str, master_record_id: str
    ) -> web.Response:
        """Send the status of one job (`job_id` given) or of the master record's first 100 jobs.

        Each reported job consumes one step, and a listing waits for the longest
        delay among those steps.
        """
        job_id = request.query.get("job_id")
        if job_id is not None and not _is_digits(job_id):
            return _error_response(_BAD_JOB_ID)

        jobs = self._find_jobs(module, master_record_id, job_id)
        if not jobs:
            return web.Response(status=204)

        now = asyncio.get_running_loop().time()
        replies = [job.next_reply(now) for job in jobs]
        delay = max(reply.delay for reply in replies)
        if delay > 0:
            await asyncio.sleep(delay)
        return _merge_status_response(jobs, replies)
