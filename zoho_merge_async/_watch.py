"""One status poller per master record, shared by every wait of a client on that record.

Waits on the same job share each poll (single flight). The waits on one
master record may follow two or more jobs, or one of them may not know its
job id yet. Then one GET without `job_id`, which lists up to 100 jobs of the
record, serves them all (fan-in), and a job missing from that list is
fetched with its `job_id`. Each poll serves every wait on the record,
whichever wait was due.

Each wait keeps its own `PollPolicy`, deadline and errors. The poller polls
when the most urgent wait is due and sleeps otherwise. It is the only task
that sleeps for the record, so a fake clock in tests records one schedule.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

from ._errors import (
    MergeJobNotFoundError,
    MultipleMergeJobsError,
    RateLimitError,
    TransportError,
    ZohoError,
)
from ._models import MergeJob
from ._waiter import Report, Waiter

if TYPE_CHECKING:
    from ._client import MergeClient

logger = logging.getLogger("zoho_merge_async")

# Seconds by which a float sum `now + (due - now)` can fall short of `due`. A poll or
# timeout this close counts as due, so the poller does not sleep again for a rounding error.
_ROUNDING = 1e-9


class WatchRegistry:
    """The record pollers of one client, and the poll counts of all its waits."""

    def __init__(self) -> None:
        self._watches: dict[tuple[str, str], RecordWatch] = {}
        self.polls_sent = 0
        """Status requests sent by waits, not counting retries."""
        self.credits_saved = 0
        """Statuses that waits received from a request another wait also received."""

    def join(self, client: MergeClient, waiter: Waiter) -> RecordWatch:
        """Add `waiter` to its record's poller, starting a poller if none runs."""
        key = (waiter.module, waiter.master_record_id)
        watch = self._watches.get(key)
        if watch is None or watch.closed:
            watch = RecordWatch(self, client, *key)
            self._watches[key] = watch
        watch.add(waiter)
        return watch

    def close(self) -> None:
        """End every wait that is still running with `RuntimeError`, because the client closed."""
        for watch in list(self._watches.values()):
            watch.fail_all(RuntimeError("this MergeClient was closed while the wait ran; "
                                        "create a new MergeClient"))

    def forget(self, watch: RecordWatch) -> None:
        """Drop `watch` so that the next wait on its record starts a new poller."""
        key = (watch.module, watch.master_record_id)
        if self._watches.get(key) is watch:
            del self._watches[key]


class RecordWatch:
    """The poller task of one master record and the waiters it serves."""

    def __init__(self, registry: WatchRegistry, client: MergeClient, module: str,
                 master_record_id: str) -> None:
        self.module = module
        self.master_record_id = master_record_id
        self.closed = False
        self._registry = registry
        self._client = client
        self._waiters: list[Waiter] = []
        self._task: asyncio.Task[None] | None = None
        self._sleeper: asyncio.Future[None] | None = None
        self._request_deadline: float | None = None
        self._last_poll: float | None = None

    def add(self, waiter: Waiter) -> None:
        """Serve `waiter` from now on, waking the poller if it sleeps."""
        waiter.schedule(0.0, self._client._clock())
        self._waiters.append(waiter)
        if self._request_deadline is not None:
            self._arm_timer(waiter, self._request_deadline)

        if self._task is None:
            self._task = asyncio.create_task(
                self._run(), name=f"zoho-merge poller {self.module} {self.master_record_id}")
        elif self._sleeper is not None:
            self._sleeper.cancel()

    async def remove(self, waiter: Waiter) -> None:
        """Stop serving `waiter`; after the last waiter, stop the poller and wait for it."""
        waiter.finished = True
        waiter.disarm()
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if self._active() or self._task is None or self._task.done():
            return
        # Closed before the task ends, so that a wait starting meanwhile gets a new poller.
        self.closed = True
        self._registry.forget(self)
        self._task.cancel()
        await asyncio.wait({self._task})

    def fail_all(self, error: BaseException) -> None:
        """Deliver `error` to every waiter still waiting; the poller then stops by itself."""
        for waiter in self._active():
            waiter.deliver(error)
        if self._sleeper is not None:
            self._sleeper.cancel()

    def _active(self) -> list[Waiter]:
        return [waiter for waiter in self._waiters if not waiter.finished]

    async def _run(self) -> None:
        try:
            await self._poll_until_idle()
        except Exception as exc:
            # A bug here must reach the waits instead of ending this task unseen.
            self.fail_all(exc)
        finally:
            self.closed = True
            self._registry.forget(self)
            self.fail_all(RuntimeError(
                f"the status poller of {self.module} record {self.master_record_id} "
                "stopped before the wait ended"))

    async def _poll_until_idle(self) -> None:
        clock = self._client._clock
        while True:
            now = clock()
            for waiter in self._active():
                if now + _ROUNDING >= waiter.deadline:
                    waiter.time_out(now)
            active = self._active()
            if not active:
                return
            poll_at = self._next_poll_time(active)
            if poll_at <= now + _ROUNDING:
                await self._poll(active)
                continue
            wake_at = min(poll_at, min(waiter.deadline for waiter in active))
            await self._sleep(wake_at - now)

    def _next_poll_time(self, active: list[Waiter]) -> float:
        """Return when the most urgent waiter wants a poll, but no sooner than the floor.

        The floor is the previous poll plus the smallest `min_interval` of the
        waiters that want one. Returns infinity if every waiter is expiring.
        """
        polling = [waiter for waiter in active if not waiter.expiring]
        if not polling:
            return math.inf
        poll_at = min(waiter.next_due for waiter in polling)
        if self._last_poll is not None:
            floor = min(waiter.policy.min_interval for waiter in polling)
            poll_at = max(poll_at, self._last_poll + floor)
        return poll_at

    async def _sleep(self, seconds: float) -> None:
        """Sleep on the client's `sleep`, or less if a new waiter cancels `_sleeper`."""
        sleeper = asyncio.ensure_future(self._client._sleep(seconds))
        self._sleeper = sleeper
        try:
            await asyncio.wait({sleeper})
        finally:
            self._sleeper = None
            if not sleeper.done():
                sleeper.cancel()
                await asyncio.wait({sleeper})
        if not sleeper.cancelled():
            sleeper.result()

    async def _poll(self, served: list[Waiter]) -> None:
        """Send one poll for every waiter in `served`, then the follow-ups for missing jobs."""
        job_ids = {waiter.job_id for waiter in served}
        listing = None in job_ids or len(job_ids) > 1
        request_job_id = None if listing else served[0].job_id
        try:
            jobs = await self._fetch(served, request_job_id)
        except ZohoError as exc:
            self._fail(served, exc)
            return

        now = self._client._clock()
        self._last_poll = now
        by_id = {job.job_id: job for job in jobs}
        delivered: list[tuple[Waiter, MergeJob]] = []
        missing: dict[str, list[Waiter]] = {}
        for waiter in served:
            if waiter.finished:
                continue
            if waiter.job_id is None:
                self._adopt_listed_job(waiter, jobs, delivered)
            elif waiter.job_id in by_id:
                delivered.append((waiter, by_id[waiter.job_id]))
            else:
                missing.setdefault(waiter.job_id, []).append(waiter)
        if listing:
            logger.debug("%s record %s: %d jobs listed for %d waits", self.module,
                         self.master_record_id, len(jobs), len(served))
        self._report(delivered, now)

        for job_id, waiters in missing.items():
            await self._poll_missing_job(job_id, waiters)

    async def _poll_missing_job(self, job_id: str, waiters: list[Waiter]) -> None:
        """Fetch one job that the record's listing left out, for its waiters only."""
        waiters = [waiter for waiter in waiters if not waiter.finished]
        if not waiters:
            return
        try:
            jobs = await self._fetch(waiters, job_id)
        except ZohoError as exc:
            self._fail(waiters, exc)
            return
        now = self._client._clock()
        self._last_poll = now
        self._report([(waiter, jobs[0]) for waiter in waiters if not waiter.finished], now)

    async def _fetch(self, served: list[Waiter], job_id: str | None) -> list[MergeJob]:
        """Send one status request, which may run until the latest deadline in `served`.

        A waiter with an earlier deadline gets a timer that ends its wait at
        its own deadline while the request is in flight.
        """
        deadline = max(waiter.deadline for waiter in served)
        self._request_deadline = deadline
        for waiter in self._active():
            self._arm_timer(waiter, deadline)
        self._registry.polls_sent += 1
        try:
            return await self._client._fetch_jobs(self.module, self.master_record_id, job_id,
                                                  deadline=deadline)
        finally:
            self._request_deadline = None
            for waiter in self._waiters:
                waiter.disarm()

    def _arm_timer(self, waiter: Waiter, request_deadline: float) -> None:
        if waiter.deadline >= request_deadline or waiter.timer is not None:
            return
        # NOTE: the timer runs on the event loop's clock, like aiohttp's request timeout,
        # so with an injected fake clock it fires only after that many real seconds.
        remaining = max(0.0, waiter.deadline - self._client._clock())
        waiter.timer = asyncio.get_running_loop().call_later(
            remaining, self._time_out_in_flight, waiter)

    def _time_out_in_flight(self, waiter: Waiter) -> None:
        waiter.timer = None
        waiter.time_out(self._client._clock())

    def _adopt_listed_job(self, waiter: Waiter, jobs: list[MergeJob],
                          delivered: list[tuple[Waiter, MergeJob]]) -> None:
        """Give a waiter without job id the record's only job, or its error."""
        if not jobs:
            waiter.deliver(MergeJobNotFoundError(self.module, self.master_record_id, None))
        elif len(jobs) > 1:
            waiter.deliver(MultipleMergeJobsError(self.module, self.master_record_id,
                                                  [job.job_id for job in jobs]))
        else:
            waiter.job_id = jobs[0].job_id
            delivered.append((waiter, jobs[0]))

    def _report(self, delivered: list[tuple[Waiter, MergeJob]], now: float) -> None:
        """Deliver the statuses of one request, and schedule each waiter's next poll."""
        shared = len(delivered) > 1
        if shared:
            self._registry.credits_saved += len(delivered) - 1
        random = self._client._random
        for waiter, job in delivered:
            waiter.polls += 1
            waiter.shared_polls += shared
            waiter.last_status = job.status
            waiter.deliver(Report(job, waiter.polls, now - waiter.started))
            if job.status.is_terminal:
                logger.debug("%s record %s job %s is %s after %d polls", self.module,
                             self.master_record_id, job.job_id, job.status.value, waiter.polls)
                continue
            policy = waiter.policy
            delay = max(policy.min_interval, policy.delay(waiter.polls - 1, random()))
            logger.debug("%s record %s job %s is %s; next poll in %.2f s", self.module,
                         self.master_record_id, job.job_id, job.status.value, delay)
            waiter.schedule(delay, now)

    def _fail(self, waiters: list[Waiter], error: ZohoError) -> None:
        """Deliver the error of a shared request to each waiter it served.

        A transport failure at or after a waiter's deadline, and a 429 whose
        pause would pass the deadline in "slow_down" mode, become that
        waiter's `MergeTimeoutError`.
        """
        now = self._client._clock()
        slowing_down = self._client._rate_limit == "slow_down"
        for waiter in waiters:
            timed_out = isinstance(error, TransportError) and now >= waiter.deadline
            if timed_out or (isinstance(error, RateLimitError) and slowing_down):
                waiter.time_out(now, error)
            else:
                waiter.deliver(error)
