"""Polling a merge job until it reaches COMPLETED or FAILURE."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from ._errors import (
    MergeJobNotFoundError,
    MergeTimeoutError,
    MultipleMergeJobsError,
    TransportError,
)
from ._models import MergeJob, MergeStatus
from ._policy import PollPolicy
from ._validation import check_id, check_module

if TYPE_CHECKING:
    from ._client import MergeClient

logger = logging.getLogger("zoho_merge_async")


async def wait_for_merge(
    client: MergeClient,
    module: str,
    master_record_id: str | int,
    job_id: str | int | None = None,
    *,
    policy: PollPolicy | None = None,
    timeout: float | None = None,
) -> MergeJob:
    """Poll a merge job until it is COMPLETED or FAILURE, and return it.

    A FAILURE is returned, not raised. Without `job_id` the wait follows the
    one job Zoho lists for the master record, and raises
    `MultipleMergeJobsError` if there are several or `MergeJobNotFoundError`
    if there is none.

    Polls are spaced as `policy` says (the client's `poll` policy by default).
    `timeout` in seconds defaults to `policy.timeout`; the wait never starts
    a sleep or a request that would end after the deadline, and raises
    `MergeTimeoutError` at the deadline. INTERNAL_ERROR is retried as the
    client's `RetryPolicy` says; every other error is raised at once.
    Cancelling the awaiting task stops the wait without another request.
    """
    module = check_module(module)
    record = check_id("master_record_id", master_record_id)
    job = check_id("job_id", job_id) if job_id is not None else None
    policy = policy if policy is not None else client.poll_policy
    timeout = policy.timeout if timeout is None else timeout
    if isinstance(timeout, bool) or not (
            isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"invalid timeout {timeout!r}: give a positive, finite number of "
                         "seconds")

    clock, sleep, random = client._clock, client._sleep, client._random
    started = clock()
    deadline = started + timeout
    polls = 0
    last_status: MergeStatus | None = None

    while True:
        try:
            jobs = await client._fetch_jobs(module, record, job, deadline=deadline)
        except TransportError as exc:
            if clock() >= deadline:
                raise MergeTimeoutError(job, last_status, clock() - started, polls) from exc
            raise
        polls += 1
        current = _select_job(jobs, module, record, job)
        job, last_status = current.job_id, current.status

        if current.status.is_terminal:
            logger.debug("%s record %s job %s is %s after %d polls", module, record, job,
                         current.status.value, polls)
            return current

        delay = policy.delay(polls - 1, random())
        remaining = deadline - clock()
        logger.debug("%s record %s job %s is %s; next poll in %.2f s", module, record, job,
                     current.status.value, delay)
        if delay >= remaining:
            if remaining > 0:
                await sleep(remaining)
            raise MergeTimeoutError(job, last_status, clock() - started, polls)
        await sleep(delay)


def _select_job(jobs: list[MergeJob], module: str, record: str, job_id: str | None) -> MergeJob:
    if job_id is not None:
        return jobs[0]
    if not jobs:
        raise MergeJobNotFoundError(module, record, None)
    if len(jobs) > 1:
        raise MultipleMergeJobsError(module, record, [job.job_id for job in jobs])
    return jobs[0]
