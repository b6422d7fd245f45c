"""The `zoho-merge demo` command: many concurrent waits against a local fake Zoho server.

The demo schedules merge jobs on a `FakeZohoServer` on 127.0.0.1, waits for
all of them at once with one `MergeClient`, shows live progress and ends with
a summary. It uses only the public API, like any program built on the SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from zoho_merge_async import (
    MergeClient,
    MergeStatus,
    PollPolicy,
    RetryPolicy,
    ZohoError,
    wait_for_merge,
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

# Fast policies. Polls are at most 1 s apart, so each wait ends within a second of its
# job's end, and the whole demo takes about LAST_FINISH + 1 seconds.
POLL_POLICY = PollPolicy(initial_delay=0.25, multiplier=1.5, max_delay=1.0, timeout=60.0)
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
    expected: MergeStatus
    internal_error: bool
    running_at: float
    """Seconds after `add_to` at which the job turns RUNNING, unless `internal_error`."""
    finished_at: float
    """Seconds after `add_to` at which the job ends, unless `internal_error`."""
    latency: float
    """Seconds the server waits before each status reply, so that requests overlap."""

    def add_to(self, server: FakeZohoServer) -> str:
        """Register the job on `server` and return its job id."""
        scheduled, running, final = (StatusReply(status, self.latency) for status in
                                     ("SCHEDULED", "RUNNING", self.expected.value))
        if self.internal_error:
            # Step scripts advance per request, so the retry after the error gets RUNNING.
            error = ZohoErrorReply("INTERNAL_ERROR", delay=self.latency)
            steps: list[Step] = [scheduled, error, running, final]
            return server.add_job(self.module, self.master_record_id, steps)
        timeline: list[tuple[float, Step]] = [
            (0.0, scheduled), (self.running_at, running), (self.finished_at, final)]
        return server.add_job(self.module, self.master_record_id, timeline=timeline)


def plan_jobs(rng: random.Random, job_count: int, record_count: int) -> list[JobPlan]:
    """Script `job_count` jobs over `record_count` master records, at least one per record.

    A share of FAILURE_SHARE of the jobs ends in FAILURE and the rest in
    COMPLETED. A share of INTERNAL_ERROR_SHARE returns INTERNAL_ERROR for one
    request and advances one step per request. The others follow a timeline of SCHEDULED,
    RUNNING and the final status, which is reached by LAST_FINISH seconds.

    Raises ValueError unless `record_count` is between 1 and `job_count`.
    """
    if not 1 <= record_count <= job_count:
        raise ValueError(f"invalid record count {record_count}: give 1 to {job_count} "
                         "(the job count), because every record gets at least one job")
    records = [(rng.choice(MODULES), str(FIRST_RECORD_ID + index))
               for index in range(record_count)]
    owners = records + [rng.choice(records) for _ in range(job_count - record_count)]
    rng.shuffle(owners)
    failing = set(rng.sample(range(job_count), math.ceil(job_count * FAILURE_SHARE)))
    erroring = set(rng.sample(range(job_count), math.ceil(job_count * INTERNAL_ERROR_SHARE)))

    plans = []
    for index, (module, record) in enumerate(owners):
        running_at = rng.uniform(*RUNNING_AT_RANGE)
        plans.append(JobPlan(
            module=module,
            master_record_id=record,
            expected=MergeStatus.FAILURE if index in failing else MergeStatus.COMPLETED,
            internal_error=index in erroring,
            running_at=running_at,
            finished_at=rng.uniform(running_at + MIN_RUNNING_TIME, LAST_FINISH),
            latency=rng.uniform(*LATENCY_RANGE),
        ))
    return plans


@dataclass(slots=True)
class Tally:
    """Counts of finished waits, and a description of each job that ended off script."""

    total: int
    completed: int = 0
    failed: int = 0
    errors: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        """Waits that ended, with a status or an error."""
        return self.completed + self.failed + self.errors

    def record(self, plan: JobPlan, job_id: str, outcome: MergeStatus | ZohoError) -> None:
        """Count one finished wait and note it if it differs from the plan."""
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
    """Run the demo and return the exit code: 0 if every job ended as scripted, else 1.

    Prints to `out` (default: stdout), and the jobs that ended off script to
    stderr. The progress line updates in place only when `out` is a terminal
    and `plain` is false. Raises ValueError unless `records` is between 1 and
    `jobs`.
    """
    out = sys.stdout if out is None else out
    if seed is None:
        seed = random.SystemRandom().randrange(1_000_000)
    plans = plan_jobs(random.Random(seed), jobs, records)

    print(f"demo: {jobs} merge jobs on {records} master records, seed {seed}", file=out)
    live = not plain and out.isatty()
    async with FakeZohoServer(access_tokens=(DEMO_TOKEN,)) as server, \
            MergeClient(DEMO_TOKEN, api_domain=server.api_domain, retry=RETRY_POLICY,
                        poll=POLL_POLICY) as client:
        started = time.monotonic()
        scheduled = [(plan, plan.add_to(server)) for plan in plans]
        tally = Tally(total=len(scheduled))
        await _wait_all(client, scheduled, tally, out, live=live)
        elapsed = time.monotonic() - started
        _print_summary(out, plans, tally, client, elapsed, server.max_in_flight)

    return _report_mismatches(out, tally)


async def _wait_all(client: MergeClient, scheduled: list[tuple[JobPlan, str]], tally: Tally,
                    out: TextIO, *, live: bool) -> None:
    """Wait for every job at once while a second task shows progress."""
    finished = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(_show_progress(client, tally, out, finished, live=live))
        async with asyncio.TaskGroup() as waits:
            for plan, job_id in scheduled:
                waits.create_task(_wait_for_job(client, plan, job_id, tally))
        finished.set()


async def _wait_for_job(client: MergeClient, plan: JobPlan, job_id: str, tally: Tally) -> None:
    # A ZohoError is counted here, so that one failed wait does not cancel the others.
    try:
        job = await wait_for_merge(client, plan.module, plan.master_record_id, job_id)
    except ZohoError as exc:
        tally.record(plan, job_id, exc)
        return
    tally.record(plan, job_id, job.status)


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
        line = tally.progress_line(client.stats.requests_sent, bar=live)
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
        ("jobs", str(tally.total), ""),
        ("completed", str(tally.completed), f"scripted {len(plans) - scripted_failures}"),
        ("failed", str(tally.failed), f"scripted {scripted_failures}"),
        ("errors", str(tally.errors), ""),
        ("polls sent", str(stats.requests_sent), "HTTP requests, retries included"),
        ("retries", str(stats.retries), "after INTERNAL_ERROR"),
        ("elapsed", f"{elapsed:.1f}", "seconds"),
        ("peak concurrent requests", str(peak_in_flight), "at the server"),
    ]
    print("\nsummary", file=out)
    for name, value, note in rows:
        print(f"  {name:<26}{value:>7}  {note}".rstrip(), file=out)


def _report_mismatches(out: TextIO, tally: Tally) -> int:
    if not tally.mismatches:
        print(f"all {tally.total} jobs ended as scripted", file=out)
        return EXIT_OK
    print(f"error: {len(tally.mismatches)} of {tally.total} jobs did not end as scripted:",
          file=sys.stderr)
    for line in tally.mismatches[:_MISMATCHES_SHOWN]:
        print(f"  {line}", file=sys.stderr)
    if len(tally.mismatches) > _MISMATCHES_SHOWN:
        print(f"  ... and {len(tally.mismatches) - _MISMATCHES_SHOWN} more", file=sys.stderr)
    return EXIT_MISMATCH
