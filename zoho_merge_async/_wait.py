"""Polling a merge job until it reaches COMPLETED or FAILURE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._models import MergeJob
from ._policy import PollPolicy
from ._progress import StatusCallback
from ._validation import check_id, check_module, check_positive_seconds
from ._waiter import follow, new_waiter

if TYPE_CHECKING:
    from ._client import MergeClient


async def wait_for_merge(
    client: MergeClient,
    module: str,
    master_record_id: str | int,
    job_id: str | int | None = None,
    *,
    policy: PollPolicy | None = None,
    timeout: float | None = None,
    on_status: StatusCallback | None = None,
) -> MergeJob:
    """Poll a merge job until it is COMPLETED or FAILURE, and return it.

    A FAILURE is returned, not raised. Without `job_id` the wait follows the
    one job Zoho lists for the master record, and raises
    `MultipleMergeJobsError` if there are several or `MergeJobNotFoundError`
    if there is none.

    Polls are spaced as `policy` sets (the client's `poll` policy by default).
    `timeout` in seconds defaults to `policy.timeout`. The wait never starts
    a sleep or a request that would end after the deadline, and it raises
    `MergeTimeoutError` at the deadline. INTERNAL_ERROR is retried as the
    client's `RetryPolicy` says. A 429 raises `RateLimitError` at once,
    unless the client was made with `rate_limit="slow_down"`: then the wait
    pauses as Retry-After asks and continues, and raises `MergeTimeoutError`
    at once if the pause would pass the deadline. Every other error is raised
    at once. Cancelling the awaiting task stops the wait without another request.

    Waits of one client on the same master record share their polls: waits
    on the same job get one request per poll, and waits on several jobs of
    the record get one request without `job_id` that lists them all. Each
    wait keeps its own policy, deadline and errors, and an error from a
    shared request is raised in every wait it served.

    `on_status` is called with a `MergeStatusChange` for the first status
    and for each change after it, in the awaiting task; an exception from it
    ends this wait and propagates.
    """
    module = check_module(module)
    record = check_id("master_record_id", master_record_id)
    job = check_id("job_id", job_id) if job_id is not None else None
    policy = policy if policy is not None else client.poll_policy
    timeout = resolve_timeout(policy, timeout)

    waiter = new_waiter(client, module, record, job, policy, timeout)
    return await follow(client, waiter, on_status)


def resolve_timeout(policy: PollPolicy, timeout: object) -> float:
    """Return `timeout` in seconds, or `policy.timeout` for None; raise ValueError if invalid."""
    return check_positive_seconds("timeout", policy.timeout if timeout is None else timeout)
