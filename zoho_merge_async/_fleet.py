"""Waiting for many merge jobs at once: `wait_many` and `wait_all`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from ._errors import ZohoError
from ._models import MergeJob, MergeStatus
from ._policy import PollPolicy
from ._progress import StatusCallback, WaitStats
from ._validation import check_id, check_module
from ._wait import resolve_timeout
from ._waiter import follow, new_waiter

if TYPE_CHECKING:
    from ._client import MergeClient


@dataclass(frozen=True, slots=True)
class MergeTarget:
    """A merge job to wait for: module API name, master record id and job id.

    Ids may be given as int or str and are stored as digit strings. A
    `job_id` of None waits for the record's only job, as `wait_for_merge`
    does. Raises `ValueError` for an invalid module name or id.
    """

    module: str
    master_record_id: str
    job_id: str | None = None

    def __post_init__(self) -> None:
        check_module(self.module)
        object.__setattr__(self, "master_record_id",
                           check_id("master_record_id", self.master_record_id))
        if self.job_id is not None:
            object.__setattr__(self, "job_id", check_id("job_id", self.job_id))


TargetArgument: TypeAlias = (
    MergeTarget | tuple[str, str | int] | tuple[str, str | int, str | int | None])
"""A `MergeTarget`, or a tuple of its fields."""


@dataclass(frozen=True, slots=True)
class WaitOutcome:
    """Result of one wait of `wait_many` or `wait_all`: a final job, or the error that ended it.

    `index` is the target's position in the input. Exactly one of `job` and
    `error` is set. `stats` counts the polls of this wait.
    """

    index: int
    target: MergeTarget
    job: MergeJob | None
    error: ZohoError | None
    stats: WaitStats

    def __post_init__(self) -> None:
        if (self.job is None) == (self.error is None):
            raise ValueError("a WaitOutcome needs exactly one of job and error, "
                             f"got job={self.job!r} and error={self.error!r}")

    @property
    def ok(self) -> bool:
        """True if the merge job ended COMPLETED; False for FAILURE or an error."""
        return self.job is not None and self.job.status is MergeStatus.COMPLETED


def wait_many(
    client: MergeClient,
    targets: Iterable[TargetArgument],
    *,
    policy: PollPolicy | None = None,
    timeout: float | None = None,
    on_status: StatusCallback | None = None,
) -> AsyncGenerator[WaitOutcome, None]:
    """Wait for every target at once and yield each `WaitOutcome` as its wait ends.

    Each target is waited for as `wait_for_merge` would, with the same
    `policy` (the client's by default), `timeout` and `on_status`, and all
    share the client's polls and request limit. A `ZohoError`, such as a
    timeout or an unknown job, becomes that target's outcome and leaves the
    other waits running. Any other exception, including one raised by
    `on_status`, cancels the remaining waits and propagates.

    Every argument is checked before this returns, so invalid input raises
    `ValueError` at the call and sends nothing. Cancelling the consuming task
    or closing the iterator (`aclose()`) cancels the waits that have not
    ended. Leaving the loop early does not: the waits go on polling until the
    iterator is closed, or until asyncio closes it after it is garbage
    collected. `contextlib.aclosing` closes it as the loop is left::

        async with contextlib.aclosing(wait_many(client, targets)) as outcomes:
            async for outcome in outcomes:
                ...
    """
    checked = [_as_target(target) for target in targets]
    policy = policy if policy is not None else client.poll_policy
    seconds = resolve_timeout(policy, timeout)
    return _run_waits(client, checked, policy, seconds, on_status)


async def wait_all(
    client: MergeClient,
    targets: Iterable[TargetArgument],
    *,
    policy: PollPolicy | None = None,
    timeout: float | None = None,
    on_status: StatusCallback | None = None,
) -> list[WaitOutcome]:
    """Wait for every target at once and return the outcomes in the order of `targets`.

    Takes the same arguments and raises the same errors as `wait_many`.
    """
    outcomes = wait_many(client, targets, policy=policy, timeout=timeout, on_status=on_status)
    async with contextlib.aclosing(outcomes):
        collected = [outcome async for outcome in outcomes]
    return sorted(collected, key=lambda outcome: outcome.index)


def _as_target(target: object) -> MergeTarget:
    if isinstance(target, MergeTarget):
        return target
    if isinstance(target, tuple) and len(target) in (2, 3):
        return MergeTarget(*target)
    raise ValueError(f"invalid target {target!r}: pass a MergeTarget or a tuple "
                     "(module, master_record_id, job_id)")


async def _run_waits(client: MergeClient, targets: list[MergeTarget], policy: PollPolicy,
                     timeout: float, on_status: StatusCallback | None,
                     ) -> AsyncGenerator[WaitOutcome, None]:
    finished: asyncio.Queue[asyncio.Task[WaitOutcome]] = asyncio.Queue()
    tasks: list[asyncio.Task[WaitOutcome]] = []
    try:
        for index, target in enumerate(targets):
            task = asyncio.create_task(
                _wait_one(client, index, target, policy, timeout, on_status))
            task.add_done_callback(finished.put_nowait)
            tasks.append(task)
        for _ in tasks:
            done = await finished.get()
            yield done.result()
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
            for task in tasks:
                # Marks every exception as retrieved, so asyncio logs none of them.
                if not task.cancelled():
                    task.exception()


async def _wait_one(client: MergeClient, index: int, target: MergeTarget, policy: PollPolicy,
                    timeout: float, on_status: StatusCallback | None) -> WaitOutcome:
    waiter = new_waiter(client, target.module, target.master_record_id, target.job_id,
                        policy, timeout)
    try:
        job = await follow(client, waiter, on_status)
    except ZohoError as error:
        return WaitOutcome(index, target, None, error, waiter.stats(client._clock()))
    return WaitOutcome(index, target, job, None, waiter.stats(client._clock()))
