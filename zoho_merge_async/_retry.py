"""When a status request is sent again: after INTERNAL_ERROR, and after 429 when slowing down.

Zoho's INTERNAL_ERROR is retried as `RetryPolicy` specifies. A 429 TOO_MANY_REQUESTS
is raised at once by default. With `MergeClient(rate_limit="slow_down")` a
request made for a wait, which has a deadline, instead waits as long as the
response's Retry-After header requests and is sent again. Without that header
it waits the `RetryPolicy` delay. Neither kind of repeat starts if its delay would
end at or after the deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Literal, TypeAlias, TypeVar

from tenacity import AsyncRetrying, RetryCallState

from ._errors import InternalError, RateLimitError
from ._policy import RetryPolicy

logger = logging.getLogger("zoho_merge_async")

_T = TypeVar("_T")

RateLimitMode: TypeAlias = Literal["raise", "slow_down"]
RATE_LIMIT_MODES: tuple[RateLimitMode, ...] = ("raise", "slow_down")


def check_rate_limit_mode(mode: object) -> RateLimitMode:
    """Return `mode` if it is "raise" or "slow_down", else raise ValueError."""
    if mode == "raise":
        return "raise"
    if mode == "slow_down":
        return "slow_down"
    raise ValueError(f"invalid rate_limit {mode!r}: use 'raise' (the default: raise "
                     "RateLimitError at once) or 'slow_down' (waits pause and continue)")


class RetrySchedule:
    """The `retry`, `wait`, `stop` and `before_sleep` of one request's `AsyncRetrying`.

    `slow_down` turns on repeats after 429. `deadline` is on `clock`, or None
    for no deadline. `count_retry` is called before each INTERNAL_ERROR retry.
    `request_label` names the request in log messages.
    The repeats after INTERNAL_ERROR and after 429 are counted apart, so a
    429 does not use up `policy.max_attempts`. They are counted in
    `before_sleep`, which tenacity calls once per repeat, so `wait` and
    `stop` can be called any number of times.
    """

    def __init__(self, policy: RetryPolicy, *, slow_down: bool, deadline: float | None,
                 clock: Callable[[], float], random: Callable[[], float],
                 count_retry: Callable[[], None], request_label: str) -> None:
        self.retried: tuple[type[Exception], ...] = (
            (InternalError, RateLimitError) if slow_down else (InternalError,))
        self._policy = policy
        self._deadline = deadline
        self._clock = clock
        self._random = random
        self._count_retry = count_retry
        self._request_label = request_label
        self._internal_retries = 0
        self._rate_limit_repeats = 0

    def retry(self, state: RetryCallState) -> bool:
        """Retry the errors in `retried`, nothing else."""
        outcome = state.outcome
        return outcome is not None and isinstance(outcome.exception(), self.retried)

    def wait(self, state: RetryCallState) -> float:
        """Compute the pause before the next attempt."""
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, RateLimitError):
            if error.retry_after is not None and error.retry_after > 0:
                return error.retry_after
            return self._policy.delay(self._rate_limit_repeats + 1, self._random())
        return self._policy.delay(self._internal_retries + 1, self._random())

    def stop(self, state: RetryCallState) -> bool:
        """Stop after `max_attempts` INTERNAL_ERRORs, or when the pause would pass the deadline."""
        error = state.outcome.exception() if state.outcome is not None else None
        # This failure is INTERNAL_ERROR number `_internal_retries + 1`.
        if isinstance(error, InternalError) \
                and self._internal_retries + 1 >= self._policy.max_attempts:
            return True
        if self._deadline is None:
            return False
        return self._clock() + state.upcoming_sleep >= self._deadline

    def before_sleep(self, state: RetryCallState) -> None:
        """Count and log the repeat that is about to happen."""
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, RateLimitError):
            self._rate_limit_repeats += 1
            logger.debug("TOO_MANY_REQUESTS for %s; sending again in %.2f s (429 number %d)",
                         self._request_label, state.upcoming_sleep, self._rate_limit_repeats)
            return
        self._internal_retries += 1
        self._count_retry()
        logger.debug("INTERNAL_ERROR for %s; retry %d in %.2f s", self._request_label,
                     self._internal_retries, state.upcoming_sleep)


async def retry_after_failure(
    send: Callable[[], Awaitable[_T]], first_failure: InternalError | RateLimitError,
    schedule: RetrySchedule, sleep: Callable[[float], Awaitable[None]],
) -> _T:
    """Send again as `schedule` decides, with `first_failure` as the outcome of attempt 1.

    The caller made attempt 1 outside tenacity. Raising its error here as
    tenacity's attempt 1 keeps the schedule as if tenacity had made it.
    """
    pending: InternalError | RateLimitError | None = first_failure

    async def attempt() -> _T:
        nonlocal pending
        if pending is not None:
            failure, pending = pending, None
            raise failure
        return await send()

    retrying = AsyncRetrying(retry=schedule.retry, stop=schedule.stop, wait=schedule.wait,
                             sleep=sleep, before_sleep=schedule.before_sleep, reraise=True)
    return await retrying(attempt)
