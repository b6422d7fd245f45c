"""The asyncio client for Zoho CRM's merge-status endpoint."""

from __future__ import annotations

import asyncio
import logging
import random as random_module
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base
from yarl import URL

from ._errors import InternalError, TransportError, UnexpectedResponseError
from ._models import MergeJob
from ._policy import PollPolicy, RetryPolicy
from ._response import MAX_BODY_BYTES, excerpt, parse_merge_response
from ._validation import (
    check_access_token,
    check_api_domain,
    check_api_version,
    check_id,
    check_module,
)

logger = logging.getLogger("zoho_merge_async")

DEFAULT_API_DOMAIN = "https://www.zohoapis.com"
"""API domain of Zoho's US data centre."""

DEFAULT_REQUEST_TIMEOUT = 30.0
"""Seconds one HTTP request may take, connecting and reading included."""

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
RandomSource = Callable[[], float]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """Status, headers and whole body of one HTTP response."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counts of what a client sent since it was created."""

    requests_sent: int
    """HTTP requests sent, each costing one Zoho API credit (retries included)."""
    retries: int
    """Requests sent again after INTERNAL_ERROR."""


class MergeClient:
    """Fetch the status of Zoho CRM merge jobs over one `aiohttp.ClientSession`.

    Use it as an async context manager, or call `aclose()` when done. The
    client creates its session on first use, so it can be built outside a
    running event loop. A `session` passed in is used as is and never closed.

    Requests that fail with INTERNAL_ERROR are retried as `retry` says; every
    other error is raised at once. `request_timeout` bounds each HTTP request
    in seconds. `poll` is the default `PollPolicy` of `wait_for_merge`.

    `clock` (monotonic seconds), `sleep` and `random` (uniform in [0, 1)) are
    there for tests that run the backoff schedule on a fake clock.

    Raises `ValueError` for an invalid argument, naming it.
    """

    def __init__(
        self,
        access_token: str,
        *,
        api_domain: str = DEFAULT_API_DOMAIN,
        api_version: str = "v7",
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        random: RandomSource = random_module.random,
    ) -> None:
        self._access_token = check_access_token(access_token)
        self._api_root = check_api_domain(api_domain)
        self._api_version = check_api_version(api_version)
        if isinstance(request_timeout, bool) or not (
                isinstance(request_timeout, int | float) and 0 < request_timeout < float("inf")):
            raise ValueError(f"invalid request_timeout {request_timeout!r}: give a positive, "
                             "finite number of seconds")
        self.retry_policy = retry if retry is not None else RetryPolicy()
        self.poll_policy = poll if poll is not None else PollPolicy()
        self._request_timeout = float(request_timeout)
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._requests_sent = 0
        self._retries = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"<MergeClient api_domain={str(self._api_root)!r} "
                f"api_version={self._api_version!r} {state}>")

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client, and its session if the client created it. Safe to call twice."""
        self._closed = True
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @property
    def closed(self) -> bool:
        """True after `aclose()`."""
        return self._closed

    @property
    def api_domain(self) -> str:
        """Scheme and host that requests go to, such as https://www.zohoapis.com."""
        return str(self._api_root)

    @property
    def stats(self) -> ClientStats:
        """Snapshot of the request counters."""
        return ClientStats(requests_sent=self._requests_sent, retries=self._retries)

    async def get_merge_status(
        self, module: str, master_record_id: str | int, job_id: str | int
    ) -> MergeJob:
        """Fetch one merge job's status.

        Raises `MergeJobNotFoundError` when Zoho answers 204, a `ZohoAPIError`
        subclass for Zoho's error codes (`InternalError` once retries run out),
        `UnexpectedResponseError` or `TransportError`.
        """
        module = check_module(module)
        record = check_id("master_record_id", master_record_id)
        job = check_id("job_id", job_id)
        jobs = await self._fetch_jobs(module, record, job)
        return jobs[0]

    async def get_merge_jobs(self, module: str, master_record_id: str | int) -> list[MergeJob]:
        """List the merge jobs of a master record (Zoho lists up to 100); empty if it has none.

        Raises as `get_merge_status` does, except that a 204 gives an empty list.
        """
        module = check_module(module)
        record = check_id("master_record_id", master_record_id)
        return await self._fetch_jobs(module, record, None)

    async def wait_for_merge(
        self,
        module: str,
        master_record_id: str | int,
        job_id: str | int | None = None,
        *,
        policy: PollPolicy | None = None,
        timeout: float | None = None,
    ) -> MergeJob:
        """Poll until the merge job finishes; the same as the module-level `wait_for_merge`."""
        from ._wait import wait_for_merge

        return await wait_for_merge(self, module, master_record_id, job_id,
                                    policy=policy, timeout=timeout)

    async def _fetch_jobs(
        self, module: str, master_record_id: str, job_id: str | None, *,
        deadline: float | None = None,
    ) -> list[MergeJob]:
        """Send one status request, retrying INTERNAL_ERROR, for already validated arguments.

        A retry whose delay would end after `deadline` (on `clock`) is not
        made, and each request's timeout is cut to end by the deadline.
        """
        url = self._merge_url(module, master_record_id)
        params = {"job_id": job_id} if job_id is not None else None
        policy = self.retry_policy

        def wait(state: RetryCallState) -> float:
            return policy.delay(state.attempt_number, self._random())

        def log_retry(state: RetryCallState) -> None:
            self._retries += 1
            logger.debug(
                "INTERNAL_ERROR for %s record %s job %s; retry %d in %.2f s",
                module, master_record_id, job_id, state.attempt_number, state.upcoming_sleep)

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(InternalError),
            stop=stop_after_attempt(policy.max_attempts) | _StopAtDeadline(deadline, self._clock),
            wait=wait,
            sleep=self._sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        return await retrying(self._send, url, params, deadline,
                              module=module, master_record_id=master_record_id, job_id=job_id)

    def _merge_url(self, module: str, master_record_id: str) -> URL:
        return self._api_root.with_path(
            f"/crm/{self._api_version}/{module}/{master_record_id}/actions/merge")

    async def _send(
        self, url: URL, params: Mapping[str, str] | None, deadline: float | None, *,
        module: str, master_record_id: str, job_id: str | None,
    ) -> list[MergeJob]:
        response = await self._exchange("GET", url, params=params, deadline=deadline)
        return parse_merge_response(response.status, response.headers, response.body,
                                    module=module, master_record_id=master_record_id,
                                    job_id=job_id)

    async def _exchange(
        self, method: str, url: URL, *, params: Mapping[str, str] | None = None,
        json_body: object = None, deadline: float | None = None,
    ) -> HttpResponse:
        """Send one request and read its whole body; no retry, no interpretation."""
        session = self._get_session()
        timeout = self._request_timeout
        if deadline is not None:
            timeout = max(0.001, min(timeout, deadline - self._clock()))
        headers = {"Authorization": f"Zoho-oauthtoken {self._access_token}"}

        self._requests_sent += 1
        try:
            async with session.request(
                method, url, params=params, json=json_body, headers=headers,
                allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                body = await _read_body(response)
                return HttpResponse(response.status, response.headers, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(
                f"{method} {url.host}{url.path} failed: "
                f"{_describe_transport_error(exc, timeout)}"
            ) from exc

    def _get_session(self) -> aiohttp.ClientSession:
        self._check_open()
        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=False)
        if self._session.closed:
            raise RuntimeError("the aiohttp.ClientSession passed to MergeClient is closed; "
                               "pass an open session or let the client create its own")
        return self._session

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this MergeClient is closed; create a new MergeClient")


class _StopAtDeadline(stop_base):
    """Stop retrying when the next delay would end after the deadline (None: never)."""

    def __init__(self, deadline: float | None, clock: Clock) -> None:
        self._deadline = deadline
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self._deadline is None:
            return False
        return self._clock() + retry_state.upcoming_sleep >= self._deadline


async def _read_body(response: aiohttp.ClientResponse) -> bytes:
    """Read the body, raising `UnexpectedResponseError` beyond `MAX_BODY_BYTES`."""
    if response.content_length is not None and response.content_length > MAX_BODY_BYTES:
        raise UnexpectedResponseError(
            f"the body of {response.content_length} bytes exceeds the limit of "
            f"{MAX_BODY_BYTES} bytes", response.status)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise UnexpectedResponseError(
                f"the body exceeds the limit of {MAX_BODY_BYTES} bytes", response.status,
                excerpt(b"".join(chunks) + chunk))
        chunks.append(chunk)
    return b"".join(chunks)


def _describe_transport_error(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no complete response within {timeout:g} s (request timeout)"
    return f"{type(exc).__name__}: {exc}"
