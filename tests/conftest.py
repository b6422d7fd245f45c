"""Shared fixtures: a fake clock, mocked Zoho responses and clients that are always closed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aioresponses import aioresponses
from yarl import URL

from zoho_merge_async import (
    DependentFieldMissingError,
    DuplicateDataError,
    LimitExceededError,
    MandatoryNotFoundError,
    MergeClient,
    NotAllowedError,
    PollPolicy,
    RetryPolicy,
    ZohoAPIError,
)

API_DOMAIN = "https://www.zohoapis.com"
TOKEN = "1000.5ecr3t7oken.abcdef0123456789"
MODULE = "Leads"
RECORD_ID = "2378988000000509963"
JOB_ID = "2423488000000513988"
OTHER_JOB_ID = "2423488000000513999"

MERGE_ERRORS: dict[str, type[ZohoAPIError]] = {
    "NOT_ALLOWED": NotAllowedError,
    "DUPLICATE_DATA": DuplicateDataError,
    "MANDATORY_NOT_FOUND": MandatoryNotFoundError,
    "DEPENDENT_FIELD_MISSING": DependentFieldMissingError,
    "LIMIT_EXCEEDED": LimitExceededError,
}


def merge_url(
    job_id: str | None = None,
    *,
    module: str = MODULE,
    record_id: str = RECORD_ID,
    version: str = "v7",
) -> str:
    """Build the merge-status URL the client is expected to request."""
    url = URL(API_DOMAIN).with_path(f"/crm/{version}/{module}/{record_id}/actions/merge")
    if job_id is not None:
        url = url.with_query(job_id=job_id)
    return str(url)


def jobs_body(*jobs: tuple[str, str]) -> dict[str, Any]:
    """Build a 200 body listing `(job_id, status)` pairs."""
    return {"merge": [{"job_id": job_id, "status": status} for job_id, status in jobs]}


def error_body(
    code: str,
    envelope: str = "top",
    message: str = "the request failed",
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a Zoho error body, at the top level or as the first item of `merge` or `data`."""
    error = {"code": code, "details": details or {}, "message": message, "status": "error"}
    if envelope == "top":
        return error
    return {envelope: [error]}


def request_count(mocked: aioresponses) -> int:
    """Count every request aioresponses recorded, matched or not."""
    return sum(len(calls) for calls in mocked.requests.values())


class FakeClock:
    """Monotonic clock that only moves when `sleep` is awaited.

    `sleeps` records every requested delay. After `hold_sleeps()`, a sleep
    records its delay, sets `sleeping` and then blocks until cancelled.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.sleeping = asyncio.Event()
        self._hold = False

    def time(self) -> float:
        return self.now

    def hold_sleeps(self) -> None:
        self._hold = True

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(float(delay))
        if self._hold:
            self.sleeping.set()
            await asyncio.Event().wait()
        self.now += delay
        await asyncio.sleep(0)


ClientFactory = Callable[..., MergeClient]


@contextlib.asynccontextmanager
async def client_factory(
    defaults: dict[str, Any],
    close: Callable[[MergeClient], Awaitable[None]] = MergeClient.aclose,
) -> AsyncIterator[ClientFactory]:
    """Yield a builder of `MergeClient(**defaults)` and pass each client built to `close` on exit.

    Keyword arguments of the builder override `defaults`.
    """
    clients: list[MergeClient] = []

    def build(**overrides: Any) -> MergeClient:
        options = dict(defaults)
        options.update(overrides)
        client = MergeClient(**options)
        clients.append(client)
        return client

    yield build

    for client in clients:
        await close(client)


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    """Intercept every aiohttp request. An unregistered URL raises ClientConnectionError."""
    with aioresponses() as mock:
        yield mock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_client(clock: FakeClock) -> AsyncIterator[ClientFactory]:
    """Build clients on the fake clock with `random` fixed at 0, and close them at teardown.

    Keyword arguments override those defaults and go to `MergeClient` unchanged.
    """
    defaults: dict[str, Any] = {
        "access_token": TOKEN,
        "clock": clock.time,
        "sleep": clock.sleep,
        "random": lambda: 0.0,
        "poll": PollPolicy(initial_delay=2.0, multiplier=1.5, max_delay=30.0, jitter=0.2,
                           timeout=600.0),
        "retry": RetryPolicy(initial_delay=1.0, multiplier=2.0, max_delay=10.0,
                             jitter=0.2, max_attempts=4),
    }
    async with client_factory(defaults) as build:
        yield build
