"""The asyncio client for Zoho CRM's merge-status endpoint."""

from __future__ import annotations

import asyncio
import functools
import logging
import random as random_module
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Self

import aiohttp
from yarl import URL

from ._auth import ApiRoot, StaticToken, TokenProvider, as_token_provider, send_with_token
from ._datacentre import DataCentre
from ._errors import InternalError, RateLimitError, ZohoError
from ._limiter import Limiter, RequestSlot, build_limiter
from ._merge import ChildArgument, FinishedMerge, MergeResult, merge_and_wait, start_merge
from ._merge_request import MergeField
from ._models import MergeJob
from ._policy import PollPolicy, RetryPolicy
from ._progress import StatusCallback
from ._response import parse_merge_response, parse_retry_after
from ._retry import RateLimitMode, RetrySchedule, check_rate_limit_mode, retry_after_failure
from ._stats import ClientStats
from ._transport import HttpResponse, send_request, timeout_until_deadline
from ._validation import (
    check_api_version,
    check_id,
    check_module,
    check_positive_seconds,
)
from ._wait import wait_for_merge
from ._watch import WatchRegistry

logger = logging.getLogger("zoho_merge_async")

DEFAULT_API_DOMAIN = DataCentre.US.api_domain
"""API domain of Zoho's US data centre."""

DEFAULT_REQUEST_TIMEOUT = 30.0
"""Seconds one HTTP request may take, connecting and reading included."""

MERGE_URL_CACHE_SIZE = 1024
"""Merge URLs (per module, master record and job id) that a client keeps before it starts afresh."""

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
RandomSource = Callable[[], float]


class MergeClient:
    """Start Zoho CRM merges and fetch the status of merge jobs over one `aiohttp.ClientSession`.

    Use it as an async context manager, or call `aclose()` when done. The
    client creates its session on first use, so it can be built outside a
    running event loop. A `session` passed in is used as is and never closed.

    `access_token` is a Zoho OAuth access token, or a `TokenProvider` such
    as `RefreshTokenProvider`. The client gets a token from it before each
    request, and a new one after a 401 INVALID_TOKEN or INVALID_OAUTHTOKEN,
    then sends the request once more. `api_domain` defaults to the
    provider's `api_domain` (from its last token answer or its data centre),
    else to the US data centre. A chosen `api_domain` in another data centre
    than the provider's raises `DataCentreMismatchError` before sending.

    Status requests that fail with INTERNAL_ERROR are retried as `retry`
    says; every other error is raised at once. A merge request
    (`merge_records`) is never retried. `request_timeout` bounds each HTTP request
    in seconds. `poll` is the default `PollPolicy` of `wait_for_merge`.

    At most `max_concurrency` requests of this client are in flight at once
    (default 10, the limit of Zoho's Standard edition; Free 5, Professional
    15, Enterprise 20, Ultimate 25 calls at once per app and organisation,
    as reported in Zoho's developer community). A request waits in line for
    a slot before its `request_timeout` starts. Pass `limiter` instead to
    share one `Limiter` between clients or processes. `rate_limit` sets what
    a 429 TOO_MANY_REQUESTS does: "raise" (the default) raises
    `RateLimitError` at once; "slow_down" makes waits pause as Retry-After
    asks and continue, never past their deadline.

    `clock` (monotonic seconds), `sleep` and `random` (uniform in [0, 1)) are
    there for tests that run the backoff schedule on a fake clock.

    Raises `ValueError` for an invalid argument, naming it.
    """

    def __init__(
        self,
        access_token: str | TokenProvider,
        *,
        api_domain: str | None = None,
        api_version: str = "v7",
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        random: RandomSource = random_module.random,
        max_concurrency: int | None = None,
        limiter: Limiter | None = None,
        rate_limit: RateLimitMode = "raise",
    ) -> None:
        self._token_provider = as_token_provider(access_token)
        self._static_token = type(self._token_provider) is StaticToken
        self._api_roots = ApiRoot(api_domain, self._token_provider)
        # The root that URLs are built on; `_exchange` moves each request to the current one.
        self._api_root = self._api_roots.current()
        self._merge_urls: dict[tuple[str, str, str | None], URL] = {}
        self._api_version = check_api_version(api_version)
        self._request_timeout = check_positive_seconds("request_timeout", request_timeout)
        self.retry_policy = retry if retry is not None else RetryPolicy()
        self.poll_policy = poll if poll is not None else PollPolicy()
        self._session = session
        # The event loop of the first request; aiohttp's session works in that loop only.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owns_session = session is None
        self._closed = False
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._requests_sent = 0
        self._retries = 0
        self._rate_limited = 0
        self._rate_limit = check_rate_limit_mode(rate_limit)
        self._limiter, self._max_concurrency = build_limiter(max_concurrency, limiter)
        self._watches = WatchRegistry()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"<MergeClient api_domain={self.api_domain!r} "
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
        """Close the client, and its session if the client created it. Safe to call twice.

        Waits still running on this client raise `RuntimeError`.
        """
        self._closed = True
        self._watches.close()
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @property
    def closed(self) -> bool:
        """True after `aclose()`."""
        return self._closed

    @property
    def api_domain(self) -> str:
        """Scheme and host that requests go to, such as https://www.zohoapis.com.

        Without an `api_domain` argument this follows the token provider's
        `api_domain`, which can change after each token refresh.
        """
        return str(self._api_roots.current())

    @property
    def stats(self) -> ClientStats:
        """Snapshot of the request counters."""
        return ClientStats(requests_sent=self._requests_sent, retries=self._retries,
                           polls_sent=self._watches.polls_sent,
                           credits_saved=self._watches.credits_saved,
                           rate_limited=self._rate_limited)

    @property
    def limiter(self) -> Limiter:
        """The `Limiter` that every request of this client passes through."""
        return self._limiter

    @property
    def max_concurrency(self) -> int | None:
        """Maximum number of requests in flight at once, or None when a `limiter` was passed in."""
        return self._max_concurrency

    async def get_merge_status(
        self, module: str, master_record_id: str | int, job_id: str | int
    ) -> MergeJob:
        """Fetch one merge job's status.

        Raises `MergeJobNotFoundError` when Zoho responds with 204, a `ZohoAPIError`
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
        on_status: StatusCallback | None = None,
    ) -> MergeJob:
        """Poll until the merge job finishes; the same as the module-level `wait_for_merge`."""
        return await wait_for_merge(self, module, master_record_id, job_id,
                                    policy=policy, timeout=timeout, on_status=on_status)

    async def merge_records(
        self,
        module: str,
        master_record_id: str | int,
        children: Sequence[ChildArgument],
        *,
        master_record_fields: Sequence[str | MergeField] = (),
    ) -> MergeResult:
        """Merge one or two child records into a master record (Zoho's Merge Records call).

        `children` contains child record ids, or `ChildRecord` objects that name
        the fields to take from that child. `master_record_fields` names fields
        whose master values to keep, with `MergeField` for file and image fields.
        Returns whether Zoho merged at once or scheduled a job (`job_id`).

        The request is sent once and never retried. Raises `ValueError` before
        sending for input Zoho would reject, a `ZohoAPIError` subclass for
        Zoho's error codes (such as `NotAllowedError` for a record in another
        scheduled merge), and `MergeOutcomeUnknownError` when the request may
        or may not have merged.
        """
        return await start_merge(self, module, master_record_id, children,
                                 master_record_fields)

    async def merge_and_wait(
        self,
        module: str,
        master_record_id: str | int,
        children: Sequence[ChildArgument],
        *,
        master_record_fields: Sequence[str | MergeField] = (),
        policy: PollPolicy | None = None,
        timeout: float | None = None,
        on_status: StatusCallback | None = None,
    ) -> FinishedMerge:
        """Merge records and wait for a scheduled merge; the same as the module-level function."""
        return await merge_and_wait(self, module, master_record_id, children,
                                    master_record_fields=master_record_fields,
                                    policy=policy, timeout=timeout, on_status=on_status)

    async def _fetch_jobs(
        self, module: str, master_record_id: str, job_id: str | None, *,
        deadline: float | None = None,
    ) -> list[MergeJob]:
        """Send one status request, retrying INTERNAL_ERROR, for already validated arguments.

        A retry whose delay would end after `deadline` (on `clock`) is not
        made, and each request's timeout is cut to end by the deadline. With
        a deadline and `rate_limit="slow_down"`, a 429 is sent again too.
        """
        url = self._merge_url(module, master_record_id, job_id)
        slow_down = self._rate_limit == "slow_down" and deadline is not None

        # The first attempt runs outside tenacity, whose bookkeeping costs about a quarter
        # of a status call's CPU time (benchmarks/overhead.py). After an INTERNAL_ERROR,
        # tenacity's attempt 1 re-raises that error, so the retry schedule is unchanged.
        # It calls `_exchange` directly rather than through `_send`, which saves creating
        # one coroutine per call.
        try:
            response = await self._exchange("GET", url, deadline=deadline)
            return parse_merge_response(response.status, response.headers, response.body,
                                        module=module, master_record_id=master_record_id,
                                        job_id=job_id)
        except (InternalError, RateLimitError) as error:
            if isinstance(error, RateLimitError) and not slow_down:
                raise
            first_failure = error

        async def send() -> list[MergeJob]:
            return await self._send(url, deadline, module=module,
                                    master_record_id=master_record_id, job_id=job_id)

        schedule = RetrySchedule(
            self.retry_policy, slow_down=slow_down, deadline=deadline, clock=self._clock,
            random=self._random, count_retry=self._count_retry,
            request_label=f"{module} record {master_record_id} job {job_id}")
        return await retry_after_failure(send, first_failure, schedule, self._sleep)

    def _count_retry(self) -> None:
        self._retries += 1

    def _merge_url(self, module: str, master_record_id: str, job_id: str | None = None) -> URL:
        """Return the record's merge URL, with the query ``job_id=`` when `job_id` is given."""
        key = (module, master_record_id, job_id)
        url = self._merge_urls.get(key)
        if url is None:
            # Polls repeat the same few URLs, so recent ones are kept rather than built
            # again by yarl. With the query already in the URL, aiohttp also does not
            # merge `params` into it, which saves a few µs per request
            # (benchmarks/overhead.py).
            if len(self._merge_urls) >= MERGE_URL_CACHE_SIZE:
                self._merge_urls.clear()
            url = self._api_root.with_path(
                f"/crm/{self._api_version}/{module}/{master_record_id}/actions/merge")
            if job_id is not None:
                url = url.with_query(job_id=job_id)
            self._merge_urls[key] = url
        return url

    async def _send(
        self, url: URL, deadline: float | None, *,
        module: str, master_record_id: str, job_id: str | None,
    ) -> list[MergeJob]:
        response = await self._exchange("GET", url, deadline=deadline)
        return parse_merge_response(response.status, response.headers, response.body,
                                    module=module, master_record_id=master_record_id,
                                    job_id=job_id)

    def _exchange(
        self, method: str, url: URL, *, json_body: object = None, deadline: float | None = None,
        translate_send_error: Callable[[ZohoError], ZohoError | None] | None = None,
    ) -> Awaitable[HttpResponse]:
        """Send one request with the access token and read its whole body; no interpretation.

        A plain method that returns the coroutine to await, so that a request with a
        static token runs in one coroutine fewer (benchmarks/overhead.py). It raises
        `RuntimeError` at once on a closed client or in another event loop.

        The request goes to the current API root, whatever root `url` has. After
        a 401 INVALID_TOKEN it is sent once more with a refreshed token, and
        that replay is not an INTERNAL_ERROR retry. Nothing else is retried.
        With a `deadline` (on `clock`), getting the token, waiting for a slot
        and the request end by the deadline, and nothing is sent after it.
        `translate_send_error` gets each error of the request itself (not of
        getting a token or a slot) and returns an error to raise instead, or None.
        """
        self._check_open()
        self._check_event_loop()
        provider = self._token_provider
        if type(provider) is StaticToken:
            # A static token is never refreshed, so `send_with_token` would return this
            # response as it is. Calling `_exchange_in_slot` directly saves creating a
            # closure and a coroutine per request (benchmarks/overhead.py).
            return self._exchange_in_slot(
                provider.access_token, method=method, url=url, json_body=json_body,
                deadline=deadline, translate_send_error=translate_send_error)
        send = functools.partial(self._exchange_in_slot, method=method, url=url,
                                 json_body=json_body, deadline=deadline,
                                 translate_send_error=translate_send_error)
        return send_with_token(provider, send, deadline=deadline, clock=self._clock,
                               request_label=f"{method} {url.path}")

    async def _exchange_in_slot(
        self, token: str, *, method: str, url: URL, json_body: object, deadline: float | None,
        translate_send_error: Callable[[ZohoError], ZohoError | None] | None,
    ) -> HttpResponse:
        """Send one request with `token` in a limiter slot and read its whole body; no retry."""
        # A static token has no `api_domain`, so the root never changes from `_api_root`.
        root = self._api_root if self._static_token else self._api_roots.checked()
        # `url` is built on `_api_root` (`_merge_url`) from checked names and ids without
        # dot segments, so joining it to that same root would give `url` again.
        target = url if root is self._api_root else root.join(url.relative())
        # The slot is taken before the request timeout starts.
        async with RequestSlot(self._limiter, self._clock, deadline, method, target):
            try:
                session = self._get_session()
                timeout = self._request_timeout if deadline is None else timeout_until_deadline(
                    method, target, self._request_timeout, deadline, self._clock)
                self._requests_sent += 1
                response = await send_request(session, method, target, token,
                                              json_body=json_body, timeout=timeout)
            except ZohoError as exc:
                replacement = translate_send_error(exc) if translate_send_error else None
                if replacement is None:
                    raise
                raise replacement from exc
        if response.status == 429:
            self._rate_limited += 1
            self._limiter.note_rate_limited(parse_retry_after(response.headers.get(
                "Retry-After")))
        return response

    def _get_session(self) -> aiohttp.ClientSession:
        self._check_open()
        if self._session is None:
            # The limiter bounds the requests in flight, so the pool needs no limit of its own.
            connector = aiohttp.TCPConnector(limit=0)
            self._session = aiohttp.ClientSession(trust_env=False, connector=connector)
        # A session the client created closes only in `aclose`, which `_check_open` catches.
        if not self._owns_session and self._session.closed:
            raise RuntimeError("the aiohttp.ClientSession passed to MergeClient is closed; "
                               "pass an open session or let the client create its own")
        return self._session

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this MergeClient is closed; create a new MergeClient")

    def _check_event_loop(self) -> None:
        """Raise `RuntimeError` in another event loop than the one of the first request."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError("a MergeClient works in the event loop it first used, and this "
                               "is another one (a second asyncio.run?); create one client per "
                               "event loop")
