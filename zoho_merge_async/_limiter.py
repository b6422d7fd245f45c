"""Bounds on the number of requests a client has in flight at once.

Zoho limits how many API calls of one app may run at the same time in one
organisation, and returns 429 TOO_MANY_REQUESTS beyond that. The limits per
edition, from Zoho developer community posts (the API reference does not list
them), are:

    Free 5, Standard 10, Professional 15, Enterprise 20, Ultimate 25

`MergeClient` sends every request through a `Limiter`: by default a
`ConcurrencyLimiter` sized for the Standard edition.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol, runtime_checkable

from yarl import URL

from ._errors import TransportError

DEFAULT_MAX_CONCURRENCY = 10
"""Requests in flight at once per client by default: the limit of Zoho's Standard edition."""

EDITION_CONCURRENCY: dict[str, int] = {
    "Free": 5,
    "Standard": 10,
    "Professional": 15,
    "Enterprise": 20,
    "Ultimate": 25,
}
"""Concurrent API calls per app per organisation by Zoho CRM edition (community posts)."""


@runtime_checkable
class Limiter(Protocol):
    """Admission control for the requests of one or more clients.

    A client enters `slot()` around every HTTP request, so the request's
    timeout starts only once a slot is free. After a 429 response the client
    calls `note_rate_limited` with the server's Retry-After in seconds, or
    None when the response had none. An implementation shared by several
    processes (for example one backed by Redis) can implement both methods.
    """

    def slot(self) -> AbstractAsyncContextManager[None]:
        """Return a context manager that takes one request slot on entry and frees it on exit."""
        ...

    def note_rate_limited(self, retry_after: float | None) -> None:
        """Record a 429 response with the server's Retry-After in seconds, or None."""
        ...


class ConcurrencyLimiter:
    """An asyncio limiter that admits at most `max_concurrency` requests at once.

    Waiting requests are admitted first in, first out. The limit adapts: each
    429 halves the current limit (down to 1) and restarts the count of
    completed requests. Once as many requests as the current limit have
    completed, it rises by one, up to `max_concurrency`. A request completes
    when its slot is freed without an exception. The request that got a 429
    completes too, just before the 429 restarts the count. A failed or
    cancelled request does not count. The limiter does not pause on
    Retry-After itself, because the request that received the 429 waits
    that long before it is sent again. It is not thread-safe: use it from
    one event loop.

    NOTE: a cancelled request frees its slot at once, although the server
    may still be processing it, so the server can briefly see more requests
    of this client than the limit.

    Raises `ValueError` unless `max_concurrency` is a whole number of at least 1.
    """

    def __init__(self, max_concurrency: int = DEFAULT_MAX_CONCURRENCY) -> None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) \
                or max_concurrency < 1:
            raise ValueError(f"invalid max_concurrency {max_concurrency!r}: give a whole number "
                             "of at least 1, such as 10 for Zoho's Standard edition")
        self._max = max_concurrency
        self._limit = max_concurrency
        self._in_flight = 0
        self._peak = 0
        self._successes = 0
        self._rate_limited = 0
        self._queue: collections.deque[asyncio.Future[None]] = collections.deque()

    def __repr__(self) -> str:
        return (f"<ConcurrencyLimiter max_concurrency={self._max} limit={self._limit} "
                f"in_flight={self._in_flight} queued={self.queued}>")

    @property
    def max_concurrency(self) -> int:
        """Largest number of requests admitted at once."""
        return self._max

    @property
    def limit(self) -> int:
        """Current limit: `max_concurrency`, or less after recent 429 responses."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now."""
        return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """Maximum number of requests in flight at once since the limiter was created."""
        return self._peak

    @property
    def queued(self) -> int:
        """Requests waiting for a slot now."""
        return len(self._queue)

    @property
    def rate_limited(self) -> int:
        """Number of 429 responses recorded with `note_rate_limited`."""
        return self._rate_limited

    def slot(self) -> AbstractAsyncContextManager[None]:
        """Return a context manager that takes one slot on entry, waiting in line for it."""
        return _Slot(self)

    @property
    def has_free_slot(self) -> bool:
        """True if a request entering `slot()` now would not wait."""
        return self._in_flight < self._limit and not self._queue

    def note_rate_limited(self, retry_after: float | None) -> None:
        """Halve the current limit (down to 1) after a 429 response."""
        self._rate_limited += 1
        self._limit = max(1, self._limit // 2)
        self._successes = 0

    async def _acquire(self) -> None:
        if self.has_free_slot:
            self._take()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # The slot was granted just before the cancellation: pass it on.
                self._release(completed=False)
            else:
                # `_admit_queued` may already have dropped this cancelled future.
                with contextlib.suppress(ValueError):
                    self._queue.remove(future)
            raise

    def _try_take(self) -> bool:
        """Take a slot if one is free now, and return whether it did."""
        if self._in_flight >= self._limit or self._queue:
            return False
        self._take()
        return True

    def _take(self) -> None:
        self._in_flight += 1
        if self._in_flight > self._peak:
            self._peak = self._in_flight

    def _release(self, *, completed: bool) -> None:
        self._in_flight -= 1
        if completed:
            self._successes += 1
        if self._limit < self._max and self._successes >= self._limit:
            self._limit += 1
            self._successes = 0
        if self._queue:
            self._admit_queued()

    def _admit_queued(self) -> None:
        while self._queue and self._in_flight < self._limit:
            future = self._queue.popleft()
            # A task cancelled while queued has a cancelled future here until its
            # handler runs, and gets no slot.
            if future.done():
                continue
            self._take()
            future.set_result(None)


class _Slot:
    """One slot of a `ConcurrencyLimiter`, held while the `async with` block runs.

    A plain class rather than `contextlib.asynccontextmanager`, which costs a
    few microseconds more on every request.
    """

    __slots__ = ("_limiter",)

    def __init__(self, limiter: ConcurrencyLimiter) -> None:
        self._limiter = limiter

    async def __aenter__(self) -> None:
        await self._limiter._acquire()

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self._limiter._release(completed=exc_type is None)


class RequestSlot:
    """Hold a slot of `limiter` for one request, waiting for it until `deadline` at most.

    `deadline` is on `clock`, or None for no limit. Entering raises
    `TransportError` if no slot is free by then, so that a wait ends with its
    usual timeout error.
    """

    __slots__ = ("_clock", "_deadline", "_limiter", "_method", "_slot", "_url")

    def __init__(self, limiter: Limiter, clock: Callable[[], float], deadline: float | None,
                 method: str, url: URL) -> None:
        self._limiter = limiter
        self._slot: AbstractAsyncContextManager[None] | None = None
        self._clock = clock
        self._deadline = deadline
        self._method = method
        self._url = url

    async def __aenter__(self) -> None:
        limiter = self._limiter
        # A free slot of a plain ConcurrencyLimiter is taken without its `_Slot`, which
        # saves creating an object and three coroutines per request. A subclass may
        # override `slot()`, so it always gets its slot from there.
        if type(limiter) is ConcurrencyLimiter and limiter._try_take():
            return
        # asyncio.timeout costs several microseconds, so it is left out when no wait is needed.
        free = isinstance(limiter, ConcurrencyLimiter) and limiter.has_free_slot
        slot = self._slot = limiter.slot()
        if self._deadline is None or free:
            await slot.__aenter__()
            return
        remaining = max(0.0, self._deadline - self._clock())
        try:
            async with asyncio.timeout(remaining):
                await slot.__aenter__()
        except TimeoutError as exc:
            url = self._url
            raise TransportError(
                f"{self._method} {url.host}{url.path} was not sent: no request slot became "
                f"free within {remaining:g} s, before the deadline") from exc

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        # The limiter receives the exception that ended the request, such as a cancellation.
        if self._slot is None:
            # The slot was taken directly in `__aenter__`, so it is freed the way `_Slot` does.
            assert isinstance(self._limiter, ConcurrencyLimiter)
            self._limiter._release(completed=exc_type is None)
            return
        await self._slot.__aexit__(exc_type, exc, traceback)


def build_limiter(max_concurrency: int | None,
                  limiter: Limiter | None) -> tuple[Limiter, int | None]:
    """Return the limiter a client uses and its `max_concurrency` (None for a given limiter).

    Raises `ValueError` for an invalid `max_concurrency`, for both arguments
    at once, or for a `limiter` without the `Limiter` methods.
    """
    if limiter is None:
        limit = DEFAULT_MAX_CONCURRENCY if max_concurrency is None else max_concurrency
        return ConcurrencyLimiter(limit), limit
    if max_concurrency is not None:
        raise ValueError(f"max_concurrency={max_concurrency!r} was given together with a "
                         "limiter: pass one of them, and size the limiter itself")
    if not isinstance(limiter, Limiter):
        raise ValueError(f"invalid limiter {limiter!r}: pass an object with slot() and "
                         "note_rate_limited(), such as ConcurrencyLimiter(10)")
    return limiter, None
