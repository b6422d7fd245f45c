"""Settings of the arq worker example, read from environment variables.

| variable | default | meaning |
|---|---|---|
| REDIS_URL | redis://127.0.0.1:6379/0 | Redis with the queue, the wait states and the slots |
| ZOHO_API_DOMAIN | https://www.zohoapis.com | API domain of the account's data centre |
| ZOHO_ACCESS_TOKEN | (none) | a fixed access token; else the three variables below |
| ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET, ZOHO_REFRESH_TOKEN | (none) | refresh tokens as needed |
| ZOHO_DATA_CENTRE | US | data centre whose accounts server refreshes tokens |
| ZOHO_CONCURRENCY_BUDGET | 10 | Zoho calls in flight at once, shared by every worker |
| ZOHO_WAIT_TIMEOUT | 3600 | seconds from the merge request until a wait gives up |
| ZOHO_TRY_SECONDS | 240 | seconds one arq try waits before it hands the wait on |
| ZOHO_REQUEST_TIMEOUT | 30 | seconds one HTTP request, and one wait for a slot, may take |
| ZOHO_POLL_INITIAL_DELAY | 2 | seconds between the first two polls of a job |
| ZOHO_POLL_MAX_DELAY | 30 | longest delay between polls, in seconds |

The budget default of 10 is Zoho's limit for the Standard edition (Free 5,
Professional 15, Enterprise 20, Ultimate 25 calls at once per app and
organisation, as reported in Zoho's developer community).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zoho_merge_async import PollPolicy

QUEUE_NAME = "zoho-merge:queue"
"""arq queue of the merge jobs, apart from arq's default queue."""

KEY_PREFIX = "zoho-merge"
"""Prefix of every Redis key this example writes besides arq's own."""

JOB_FUNCTION = "merge_and_report"
"""Name under which the worker registers the job function, and `enqueue` enqueues it."""

# Seconds added to one try's longest phase to get arq's job_timeout: room for Redis calls.
_JOB_TIMEOUT_MARGIN = 5.0


@dataclass(frozen=True, slots=True)
class Settings:
    """Settings of one worker or enqueuing process; times are in seconds."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    api_domain: str = "https://www.zohoapis.com"
    concurrency_budget: int = 10
    wait_timeout: float = 3600.0
    try_seconds: float = 240.0
    request_timeout: float = 30.0
    poll_initial_delay: float = 2.0
    poll_max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.concurrency_budget < 1:
            raise ValueError(f"invalid ZOHO_CONCURRENCY_BUDGET {self.concurrency_budget}: give "
                             "a whole number of at least 1, such as 10 for the Standard edition")
        for name in ("wait_timeout", "try_seconds", "request_timeout", "poll_initial_delay",
                     "poll_max_delay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"invalid ZOHO_{name.upper()} {value!r}: give a positive, "
                                 "finite number of seconds")

    @property
    def poll_policy(self) -> PollPolicy:
        """Poll policy of every wait, with `wait_timeout` as its default deadline."""
        return PollPolicy(initial_delay=self.poll_initial_delay,
                          max_delay=max(self.poll_max_delay, self.poll_initial_delay),
                          timeout=self.wait_timeout,
                          min_interval=min(1.0, self.poll_initial_delay))

    @property
    def slot_lease(self) -> float:
        """Seconds after which a slot of a process that died is free again.

        Longer than `request_timeout`, the longest time a `MergeClient` request
        keeps a slot, so a live request does not lose its slot.
        """
        return self.request_timeout + _JOB_TIMEOUT_MARGIN

    @property
    def job_timeout(self) -> float:
        """arq's job_timeout: one try either sends the merge request or waits `try_seconds`.

        The merge request may wait `request_timeout` for a slot and as long
        again for the response. arq runs a job again only after its worker's
        lock on it expires, `job_timeout` + 10 s after the try started.
        """
        return max(self.try_seconds, 2 * self.request_timeout) + _JOB_TIMEOUT_MARGIN

    @property
    def max_tries(self) -> int:
        """arq's max_tries: enough tries of `try_seconds` for a whole wait, plus 20 for failures."""
        return math.ceil(self.wait_timeout / self.try_seconds) + 20


def dump_json(value: Any) -> bytes:
    """Serialize an arq job or result as JSON, in place of arq's default pickle."""
    return json.dumps(value).encode()


def load_json(data: bytes) -> Any:
    """Read an arq job or result written by `dump_json`."""
    return json.loads(data)


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Read `Settings` from `environ`; raise ValueError naming a malformed variable."""
    defaults = Settings()
    return Settings(
        redis_url=environ.get("REDIS_URL", defaults.redis_url),
        api_domain=environ.get("ZOHO_API_DOMAIN", defaults.api_domain),
        concurrency_budget=int(_read_number(environ, "ZOHO_CONCURRENCY_BUDGET",
                                            defaults.concurrency_budget, whole=True)),
        wait_timeout=_read_number(environ, "ZOHO_WAIT_TIMEOUT", defaults.wait_timeout),
        try_seconds=_read_number(environ, "ZOHO_TRY_SECONDS", defaults.try_seconds),
        request_timeout=_read_number(environ, "ZOHO_REQUEST_TIMEOUT", defaults.request_timeout),
        poll_initial_delay=_read_number(environ, "ZOHO_POLL_INITIAL_DELAY",
                                        defaults.poll_initial_delay),
        poll_max_delay=_read_number(environ, "ZOHO_POLL_MAX_DELAY", defaults.poll_max_delay),
    )


def _read_number(environ: Mapping[str, str], name: str, default: float,
                 whole: bool = False) -> float:
    text = environ.get(name)
    if text is None:
        return default
    try:
        return int(text) if whole else float(text)
    except ValueError:
        kind = "a whole number" if whole else "a number of seconds"
        raise ValueError(f"invalid {name} {text!r}: give {kind}") from None
