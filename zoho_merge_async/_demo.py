"""The `zoho-merge demo` command: many merges and waits against a local fake Zoho server.

The demo starts merges with `MergeClient.merge_records` on a `FakeZohoServer`
on 127.0.0.1: each master record gets one merge large enough that Zoho
schedules it as a job, and the other merges are done at once. It then waits
for all jobs at once with the same client, shows live progress and ends with
a summary. It uses only the public API, like any program built on the SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from zoho_merge_async import (
    MergeClient,
    MergeOutcome,
    MergeStatus,
    MergeTarget,
    PollPolicy,
    RetryPolicy,
    ZohoError,
    wait_many,
)
from zoho_merge_async.testing import FakeZohoServer, StatusReply, Step, ZohoErrorReply

MODULES = ("Leads", "Contacts", "Accounts", "Deals")
FAILURE_SHARE = 0.10
"""Share of jobs scripted to end in FAILURE, rounded up."""
INTERNAL_ERROR_SHARE = 0.02
"""Share of jobs that return INTERNAL_ERROR for one request, rounded up. The client retries."""

RUNNING_AT_RANGE = (0.3, 2.0)
"""Range of the time in seconds at which a timeline job turns RUNNING."""
MIN_RUNNING_TIME = 0.3
LAST_FINISH = 4.0
"""Time in seconds by which every timeline job has finished."""
LATENCY_RANGE = (0.02, 0.08)
"""Range of the server's reply delay in seconds, drawn once per job."""

DEMO_TOKEN = "demo-token"
FIRST_RECORD_ID = 2378988000000500001
FIRST_CHILD_ID = 2378988000000800001
LARGE_CHILD_RELATED_RECORDS = 5000
"""Related records of a large child: above 1000, Zoho schedules the merge as a job."""

# Fast policies. Polls are at most 1 s apart, so each wait ends within a second of its
# job's end, and the whole demo takes about LAST_FINISH + 1 seconds.
POLL_POLICY = PollPolicy(initial_delay=0.25, multiplier=1.5, max_delay=1.0, timeout=60.0,
                         min_interval=0.25)
RETRY_POLICY = RetryPolicy(initial_delay=0.1, max_delay=1.0)

EXIT_OK = 0
EXIT_MISMATCH = 1

_LIVE_INTERVAL = 0.1  # seconds between redraws of the updating progress line
_PLAIN_INTERVAL = 1.0  # seconds between plain progress lines
_BAR_WIDTH = 10
_MISMATCHES_SHOWN = 10


@dataclass(frozen=True, slots=True)
class JobPlan:
    """Script of one demo merge job and the status it must end with."""

    module: str
    master_record_id: str
    child_record_id: str
    """Child with `LARGE_CHILD_RELATED_RECORDS` related records, so the merge is scheduled."""
    expected: MergeStatus
    internal_error: bool
    running_at: float
    """Seconds after the merge request at which the job turns RUNNING, unless `internal_error`."""
    finished_at: float
    """Seconds after the merge request at which the job ends, unless `internal_error`."""
    latency: float
    """Seconds the server waits before each status reply, so that requests overlap."""

    def add_to(self, server: FakeZohoServer) -> None:
        """Add the job's records to `server` and script the job that merging them schedules."""
        server.merges.add_record(self.module, self.master_record_id)
        server.merges.add_record(self.module, self.child_record_id,
                                 related_records=LARGE_CHILD_RELATED_RECORDS)
        scheduled, running, final = (StatusReply(status, self.latency) for status in
                                     ("SCHEDULED", "RUNNING", self.expected.value))
        if self.internal_error:
            # Step scripts advance per request, so the retry after the error gets RUNNING.
            error = ZohoErrorReply("INTERNAL_ERROR", delay=self.latency)
            steps: list[Step] = [scheduled, error, running, final]
            server.merges.script_job(self.module, self.master_record_id, steps)
            return
        timeline: list[tuple[float, Step]] = [
            (0.0, scheduled), (self.running_at, running), (self.finished_at, final)]
        server.merges.script_job(self.module, self.master_record_id, timeline=timeline)


@dataclass(frozen=True, slots=True)
class InstantMerge:
    """A demo merge of one small child record, which Zoho does at once."""

    module: str
    master_record_id: str
    child_record_id: str
    expected: MergeStatus = MergeStatus.COMPLETED

    def add_to(self, server: FakeZohoServer) -> None:
        """Add the child record to `server`; its master comes from a `JobPlan`."""
        server.merges.add_record(self.module, self.child_record_id)


def plan_jobs(rng: random.Random, merge_count: int,
              record_count: int) -> tuple[list[JobPlan], list[InstantMerge]]:
    """Plan `merge_count` merges into `record_count` master records.

    Every master record gets one merge that Zoho schedules as a job (a
    `JobPlan`). The other merges are `InstantMerge`s into random master
    records. A share of FAILURE_SHARE of all merges, rounded up, is a job that
    ends in FAILURE, and a share of INTERNAL_ERROR_SHARE is a job that returns
    INTERNAL_ERROR for one request and advances one step per request. Both
    shares are capped at `record_count`, the number of jobs. The other jobs
    follow a timeline of SCHEDULED, RUNNING and the final status, which is
    reached by LAST_FINISH seconds.

    Raises ValueError unless `record_count` is between 1 and `merge_count`.
    """
    if not 1 <= record_count <= merge_count:
        raise ValueError(f"invalid record count {record_count}: give 1 to {merge_count} "
                         "(the merge count), because every record gets at least one merge")
    records = [(rng.choice(MODULES), str(FIRST_RECORD_ID + index))
               for index in range(record_count)]
    child_ids = (str(FIRST_CHILD_ID + index) for index in itertools.count())
    failing = set(rng.sample(range(record_count),
                             min(record_count, math.ceil(merge_count * FAILURE_SHARE))))
    erroring = set(rng.sample(range(record_count),
                              min(record_count, math.ceil(merge_count * INTERNAL_ERROR_SHARE))))

    plans = [
        _plan_job(rng, module, record, next(child_ids),
                  MergeStatus.FAILURE if index in failing else MergeStatus.COMPLETED,
                  index in erroring)
        for index, (module, record) in enumerate(records)]
    owners = [rng.choice(records) for _ in range(merge_count - record_count)]
    instant = [InstantMerge(module, record, next(child_ids)) for module, record in owners]
    return plans, instant


def _plan_job(rng: random.Random, module: str, record: str, child_id: str,
              expected: MergeStatus, internal_error: bool) -> JobPlan:
    """Draw the timeline and latency of one job."""
    running_at = rng.uniform(*RUNNING_AT_RANGE)
    return JobPlan(
        module=module,
        master_record_id=record,
        child_record_id=child_id,
        expected=expected,
        internal_error=internal_error,
        running_at=running_at,
        finished_at=rng.uniform(running_at + MIN_RUNNING_TIME, LAST_FINISH),
        latency=rng.uniform(*LATENCY_RANGE),
    )


async def start_merges(client: MergeClient, server: FakeZohoServer, plans: list[JobPlan],
                       instant: list[InstantMerge], tally: Tally) -> list[tuple[JobPlan, str]]:
    """Send every planned merge and return the jobs Zoho scheduled, with their job ids.

    A master record's instant merges are sent before its job is started,
    because Zoho rejects a record that is in an unfinished merge job. Instant
    merges and merges that failed are counted in `tally` here.
    """
    for plan in plans:
        plan.add_to(server)
    for merge in instant:
        merge.add_to(server)
    instant_by_master: dict[str, list[InstantMerge]] = {}
    for merge in instant:
        instant_by_master.setdefault(merge.master_record_id, []).append(merge)

    started: list[tuple[JobPlan, str]] = []

    async def start(plan: JobPlan) -> None:
        for merge in instant_by_master.get(plan.master_record_id, []):
            await _merge_at_once(client, merge, tally)
        job_id = await _start_job(client, plan, tally)
        if job_id is not None:
            started.append((plan, job_id))

    async with asyncio.TaskGroup() as group:
        for plan in plans:
            group.create_task(start(plan))
    return started


async def _merge_at_once(client: MergeClient, merge: InstantMerge, tally: Tally) -> None:
    # A ZohoError is counted here, so that one failed merge does not cancel the others.
    try:
        result = await client.merge_records(merge.module, merge.master_record_id,
                                            [merge.child_record_id])
    except ZohoError as exc:
        tally.record(merge, "(none)", exc)
        return
    merged = result.outcome is MergeOutcome.MERGED
    tally.record(merge, result.job_id or "(none)",
                 MergeStatus.COMPLETED if merged else MergeStatus.SCHEDULED)


async def _start_job(client: MergeClient, plan: JobPlan, tally: Tally) -> str | None:
    try:
        result = await client.merge_records(plan.module, plan.master_record_id,
                                            [plan.child_record_id])
    except ZohoError as exc:
        tally.record(plan, "(none)", exc)
        return None
    if result.job_id is None:
        tally.record(plan, "(none)", MergeStatus.COMPLETED)
    return result.job_id


@dataclass(slots=True)
class Tally:
    """Counts of finished merges and waits, and a description of each that ended off script."""

    total: int
    completed: int = 0
    failed: int = 0
    errors: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        """Waits that ended, with a status or an error."""
        return self.completed + self.failed + self.errors

    def record(self, plan: JobPlan | InstantMerge, job_id: str,
               outcome: MergeStatus | ZohoError) -> None:
        """Count one finished merge or wait and note it if it differs from the plan."""
        if outcome is MergeStatus.COMPLETED:
            self.completed += 1
        elif outcome is MergeStatus.FAILURE:
            self.failed += 1
        else:
            self.errors += 1
        if outcome is not plan.expected:
            actual = outcome.value if isinstance(outcome, MergeStatus) else f"error: {outcome}"
            self.mismatches.append(f"{plan.module} record {plan.master_record_id} job {job_id}: "
                                   f"expected {plan.expected.value}, got {actual}")

    def progress_line(self, polls: int, *, bar: bool) -> str:
        """Format one progress line, with a bar of `_BAR_WIDTH` characters if `bar`."""
        text = (f"{self.done}/{self.total} done  completed {self.completed}  "
                f"failed {self.failed}  errors {self.errors}  polls {polls}")
        if not bar:
            return text
        filled = self.done * _BAR_WIDTH // self.total
        return f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {text}"


async def run_demo(*, jobs: int, records: int, seed: int | None, plain: bool,
                   out: TextIO | None = None) -> int:
    """Run the demo and return the exit code: 0 if every merge ended as scripted, else 1.

    Sends `jobs` merges into `records` master records, as `plan_jobs` plans
    them. Prints to `out` (default: stdout), and the merges that ended off
    script to stderr. The progress line updates in place only when `out` is a
    terminal and `plain` is false. Raises ValueError unless `records` is
    between 1 and `jobs`.
    """
    out = sys.stdout if out is None else out
    if seed is None:
        seed = random.SystemRandom().randrange(1_000_000)
    plans, instant = plan_jobs(random.Random(seed), jobs, records)

    print(f"demo: {jobs} merges into {records} master records ({len(plans)} scheduled as "
          f"jobs, {len(instant)} done at once), seed {seed}", file=out)
    live = not plain and out.isatty()
    async with FakeZohoServer(access_tokens=(DEMO_TOKEN,)) as server, \
            MergeClient(DEMO_TOKEN, api_domain=server.api_domain, retry=RETRY_POLICY,
                        poll=POLL_POLICY) as client:
        started = time.monotonic()
        tally = Tally(total=jobs)
        scheduled = await start_merges(client, server, plans, instant, tally)
        await _wait_all(client, scheduled, tally, out, live=live)
        elapsed = time.monotonic() - started
        _print_summary(out, plans, tally, client, elapsed, server.max_in_flight)

    return _report_mismatches(out, tally)


async def _wait_all(client: MergeClient, scheduled: list[tuple[JobPlan, str]], tally: Tally,
                    out: TextIO, *, live: bool) -> None:
    """Wait for every job at once with `wait_many` while a second task shows progress."""
    finished = asyncio.Event()
    targets = [MergeTarget(plan.module, plan.master_record_id, job_id)
               for plan, job_id in scheduled]
    async with asyncio.TaskGroup() as group:
        group.create_task(_show_progress(client, tally, out, finished, live=live))
        async with contextlib.aclosing(wait_many(client, targets)) as outcomes:
            async for outcome in outcomes:
                plan, job_id = scheduled[outcome.index]
                if outcome.job is not None:
                    tally.record(plan, job_id, outcome.job.status)
                elif outcome.error is not None:
                    tally.record(plan, job_id, outcome.error)
        finished.set()


async def _show_progress(client: MergeClient, tally: Tally, out: TextIO,
                         finished: asyncio.Event, *, live: bool) -> None:
    """Redraw one progress line (`live`) or print a line per second, until `finished`.

    The last line, drawn after `finished` is set, shows the final counts.
    """
    started = time.monotonic()
    interval = _LIVE_INTERVAL if live else _PLAIN_INTERVAL
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await finished.wait()
        line = tally.progress_line(client.stats.polls_sent, bar=live)
        if live:
            out.write(f"\r{line}")
            out.flush()
        else:
            print(f"{time.monotonic() - started:5.1f} s  {line}", file=out, flush=True)
        if finished.is_set():
            break
    if live:
        out.write("\n")


def _print_summary(out: TextIO, plans: list[JobPlan], tally: Tally, client: MergeClient,
                   elapsed: float, peak_in_flight: int) -> None:
    scripted_failures = sum(plan.expected is MergeStatus.FAILURE for plan in plans)
    stats = client.stats
    rows = [
        ("merges", str(tally.total), f"{len(plans)} scheduled as jobs"),
        ("completed", str(tally.completed), f"scripted {tally.total - scripted_failures}"),
        ("failed", str(tally.failed), f"scripted {scripted_failures}"),
        ("errors", str(tally.errors), ""),
        ("requests sent", str(stats.requests_sent), "merges and polls, retries included"),
        ("polls sent", str(stats.polls_sent), "status requests of the waits"),
        ("credits saved", str(stats.credits_saved),
         "statuses shared by waits on one job or record"),
        ("retries", str(stats.retries), "after INTERNAL_ERROR"),
        ("rate limited", str(stats.rate_limited), "429 answers"),
        ("elapsed", f"{elapsed:.1f}", "seconds"),
        ("max concurrency", str(client.max_concurrency), "requests in flight at most"),
        ("peak concurrent requests", str(peak_in_flight), "at the server"),
    ]
    print("\nsummary", file=out)
    for name, value, note in rows:
        print(f"  {name:<26}{value:>7}  {note}".rstrip(), file=out)


def _report_mismatches(out: TextIO, tally: Tally) -> int:
    if not tally.mismatches:
        print(f"all {tally.total} merges ended as scripted", file=out)
        return EXIT_OK
    print(f"error: {len(tally.mismatches)} of {tally.total} merges did not end as scripted:",
          file=sys.stderr)
    for line in tally.mismatches[:_MISMATCHES_SHOWN]:
        print(f"  {line}", file=sys.stderr)
    if len(tally.mismatches) > _MISMATCHES_SHOWN:
        print(f"  ... and {len(tally.mismatches) - _MISMATCHES_SHOWN} more", file=sys.stderr)
    return EXIT_MISMATCH
