"""Backoff policies for polling a merge job and for retrying INTERNAL_ERROR."""

from __future__ import annotations

import math
from dataclasses import dataclass


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_backoff(owner: str, initial_delay: float, multiplier: float, max_delay: float,
                   jitter: float) -> None:
    if not (_is_number(initial_delay) and initial_delay > 0):
        raise ValueError(f"{owner}.initial_delay must be a positive number of seconds, "
                         f"got {initial_delay!r}")
    if not (_is_number(multiplier) and multiplier >= 1):
        raise ValueError(f"{owner}.multiplier must be at least 1, got {multiplier!r}")
    if not (_is_number(max_delay) and max_delay >= initial_delay):
        raise ValueError(f"{owner}.max_delay must be a finite number of seconds at least "
                         f"initial_delay ({initial_delay!r}), got {max_delay!r}")
    if not (_is_number(jitter) and 0 <= jitter < 1):
        raise ValueError(f"{owner}.jitter must be a fraction from 0 up to (not including) 1, "
                         f"got {jitter!r}")


def _backoff(initial_delay: float, multiplier: float, max_delay: float, jitter: float,
             attempt: int, random_value: float) -> float:
    # min() first keeps multiplier ** attempt from overflowing into inf after many polls.
    exponent = min(attempt, 1000)
    try:
        base = min(max_delay, initial_delay * multiplier**exponent)
    except OverflowError:
        base = max_delay
    return base * (1 - jitter * random_value)


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """Polling schedule of `wait_for_merge` for a job that is not finished, and its deadline.

    The delay before poll ``n + 1`` (``n`` counting from 0) is::

        max(min_interval, min(max_delay, initial_delay * multiplier ** n) * (1 - jitter * r))

    with ``r`` drawn uniformly from [0, 1). `delay()` computes the second
    argument of that `max`. Jitter only shortens a delay, so no delay exceeds
    the larger of `max_delay` and `min_interval`, and waits started together
    drift apart instead of polling in lockstep. With the defaults the delays
    are about 2, 3, 4.5, 6.75, ... seconds, capped at 30. Each poll costs one
    Zoho API credit.

    `min_interval` (1 s by default) is also a floor for the master record.
    Waits of one client on the same record share their polls, and the record
    is polled again no sooner than the smallest `min_interval` among the
    waits that are due.

    `timeout` is the default deadline of a wait in seconds (600, ten minutes).
    """

    initial_delay: float = 2.0
    multiplier: float = 1.5
    max_delay: float = 30.0
    jitter: float = 0.2
    timeout: float = 600.0
    min_interval: float = 1.0

    def __post_init__(self) -> None:
        _check_backoff("PollPolicy", self.initial_delay, self.multiplier, self.max_delay,
                       self.jitter)
        if not (_is_number(self.timeout) and self.timeout > 0):
            raise ValueError(f"PollPolicy.timeout must be a positive, finite number of "
                             f"seconds, got {self.timeout!r}")
        if not (_is_number(self.min_interval) and self.min_interval >= 0):
            raise ValueError(f"PollPolicy.min_interval must be a finite number of seconds "
                             f"of at least 0, got {self.min_interval!r}")

    def delay(self, poll_index: int, random_value: float) -> float:
        """Compute the delay in seconds after poll `poll_index` (0 for the first poll)."""
        return _backoff(self.initial_delay, self.multiplier, self.max_delay, self.jitter,
                        poll_index, random_value)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry schedule for a request that failed with Zoho's INTERNAL_ERROR.

    A request is sent at most `max_attempts` times (the default 4 is one try
    and three retries). The delay before retry ``n`` (``n`` counting from 1) is::

        min(max_delay, initial_delay * multiplier ** (n - 1)) * (1 - jitter * r)

    with ``r`` drawn uniformly from [0, 1): about 1, 2 and 4 seconds with the
    defaults. No other error is retried. `max_attempts=1` turns retries off.
    """

    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 10.0
    jitter: float = 0.2
    max_attempts: int = 4

    def __post_init__(self) -> None:
        _check_backoff("RetryPolicy", self.initial_delay, self.multiplier, self.max_delay,
                       self.jitter)
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) \
                or self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be a whole number of at least 1, "
                             f"got {self.max_attempts!r}")

    def delay(self, retry_number: int, random_value: float) -> float:
        """Compute the delay in seconds before retry `retry_number` (1 for the first retry)."""
        return _backoff(self.initial_delay, self.multiplier, self.max_delay, self.jitter,
                        retry_number - 1, random_value)
