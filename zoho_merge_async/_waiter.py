"""The state of one wait inside a shared record poller, and the task that follows it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from ._errors import MergeTimeoutError, summarize_error
from ._models import MergeJob, MergeStatus
from ._policy import PollPolicy
from ._progress import MergeStatusChange, StatusCallback, WaitStats

if TYPE_CHECKING:
    from ._client import MergeClient


@dataclass(frozen=True, slots=True)
class Report:
    """A job status delivered to one waiter, with that waiter's counts at that moment."""

    job: MergeJob
    polls: int
    elapsed: float


Event: TypeAlias = Report | BaseException


@dataclass(eq=False, slots=True)
class Waiter:
    """One wait on a merge job, as its record poller tracks it.

    Times are on the client's clock. `next_due` is when the waiter wants its
    next poll. `expiring` means that poll would start at or after `deadline`,
    so the waiter only takes statuses that other waits' polls bring, until
    its deadline passes. `finished` is set once the waiter has received its
    last event (a final status or an error).
    """

    module: str
    master_record_id: str
    job_id: str | None
    policy: PollPolicy
    started: float
    deadline: float
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    polls: int = 0
    shared_polls: int = 0
    last_status: MergeStatus | None = None
    next_due: float = 0.0
    expiring: bool = False
    finished: bool = False
    timer: asyncio.TimerHandle | None = None

    def schedule(self, delay: float, now: float) -> None:
        """Ask for the next poll `delay` seconds after `now`, or expire if that is too late."""
        if delay >= self.deadline - now:
            self.expiring = True
        else:
            self.expiring = False
            self.next_due = now + delay

    def deliver(self, event: Event) -> None:
        """Queue `event` for the waiting task; an error or a final status is the last one."""
        if self.finished:
            return
        if isinstance(event, BaseException) or event.job.status.is_terminal:
            self.finished = True
            self.disarm()
        self.events.put_nowait(event)

    def time_out(self, now: float, cause: BaseException | None = None) -> None:
        """Deliver `MergeTimeoutError` with this waiter's counts and `cause` as its last error."""
        last_error = summarize_error(cause) if cause is not None else ""
        error = MergeTimeoutError(self.job_id, self.last_status, now - self.started, self.polls,
                                  last_error)
        if cause is not None:
            error.__cause__ = cause
        self.deliver(error)

    def disarm(self) -> None:
        """Cancel the deadline timer set while a shared request was in flight."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def stats(self, now: float) -> WaitStats:
        """Snapshot the poll counts, with the time elapsed until `now`."""
        return WaitStats(polls=self.polls, shared_polls=self.shared_polls,
                         elapsed=now - self.started)


def new_waiter(client: MergeClient, module: str, master_record_id: str, job_id: str | None,
               policy: PollPolicy, timeout: float) -> Waiter:
    """Create a waiter whose deadline is `timeout` seconds from now, for valid arguments."""
    started = client._clock()
    return Waiter(module, master_record_id, job_id, policy, started, started + timeout)


async def follow(client: MergeClient, waiter: Waiter,
                 on_status: StatusCallback | None = None) -> MergeJob:
    """Register `waiter` with its record's poller and return the job once it is final.

    Calls `on_status` for the first status and for each change, in this task,
    so an exception from it ends this wait only. Raises the `ZohoError` the
    poller delivers. Leaving, by any exit, stops the poller if this was its
    last waiter.
    """
    watch = client._watches.join(client, waiter)
    seen: MergeStatus | None = None
    try:
        while True:
            event = await waiter.events.get()
            if isinstance(event, BaseException):
                raise event
            job = event.job
            if on_status is not None and job.status is not seen:
                on_status(MergeStatusChange(
                    waiter.module, waiter.master_record_id, job.job_id, seen, job.status,
                    event.polls, event.elapsed))
            seen = job.status
            if job.status.is_terminal:
                return job
    finally:
        await watch.remove(waiter)
