"""Benchmark 3: thousands of concurrent waits under a concurrency cap.

    python -m benchmarks.fleet [--waits 10000] [--waiters-per-job 2] [--jobs-per-record 5]

The scenario: `--waits` waits on `--waits / --waiters-per-job` merge jobs,
`--jobs-per-record` jobs on each master record. Each job is SCHEDULED, turns
RUNNING halfway and COMPLETED at a time drawn uniformly (seeded) from
[`--first-finish`, `--last-finish`] seconds after it was added to the fake
server. The server runs in a child process and replies 429 TOO_MANY_REQUESTS
to a request that would exceed `--max-concurrency` requests at once. Polls
follow a `PollPolicy` without jitter, so the schedule is deterministic.

Two modes run the same scenario, each against a fresh server:

- shared: one `MergeClient` with a `ConcurrencyLimiter(N)`, and `wait_all`.
  Waits on one job share each poll (single flight), and the waits on one
  record share one listing request (fan-in).
- independent: one `MergeClient` per wait, all on one aiohttp session and one
  `ConcurrencyLimiter(N)`. The cap is the same but nothing is shared, so this
  is the baseline for polls per merge.

Times are measured from the start of the waits, and a job's completion from
the server's clock reading taken just before the first job was added, so no
job completes earlier than computed. Two reference times:

- last completion: when the last job turns COMPLETED. No wait can end
  before its job completes, so the wall time is never below this.
- schedule bound: each wait ends at the first poll of its schedule (offsets
  0, d0, d0 + d1, ... from the start) at or after its job's completion, and
  the bound is the latest of these. If requests took no time, the waits
  would end exactly then. The target is a wall time of at most
  TARGET_BOUND_RATIO times this bound. A real poll is scheduled a delay
  after the previous reply, so polls drift later than the offsets. A drifted
  poll can see a completion that the schedule would see one poll later, so
  the ratio can fall below 1.

"Requests scheduled" counts the requests the schedule calls for if requests
took no time: every poll of every wait in the independent mode, and one
request per record and poll time in the shared mode. A mode that sends fewer
has fallen behind its schedule, because the cap allows at most
`--max-concurrency` requests per reply latency.

Memory: the resident set size is sampled every 50 ms while the waits run.
"RSS growth per wait" is the peak minus the size just before the waits
started, divided by the number of waits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from zoho_merge_async import (
    ConcurrencyLimiter,
    MergeClient,
    MergeStatus,
    MergeTarget,
    PollPolicy,
    wait_all,
    wait_for_merge,
)

from ._harness import TOKEN, ServerProcess, Table, current_rss_bytes, print_report

TARGET_BOUND_RATIO = 1.2
"""Largest acceptable wall time of the shared mode, as a multiple of the schedule bound."""
MODULE = "Leads"
FIRST_RECORD_ID = 2378988000000600001
RSS_SAMPLE_SECONDS = 0.05
MODES = ("shared", "independent")


@dataclass(frozen=True, slots=True)
class Scenario:
    """The waits, jobs, finish times and poll schedule of one run."""

    waits: int
    waiters_per_job: int
    jobs_per_record: int
    first_finish: float
    last_finish: float
    policy: PollPolicy
    max_concurrency: int
    latency: float
    seed: int

    def __post_init__(self) -> None:
        if self.waiters_per_job < 1 or self.jobs_per_record < 1:
            raise ValueError("waiters_per_job and jobs_per_record must be at least 1, got "
                             f"{self.waiters_per_job} and {self.jobs_per_record}")
        if self.waits < 1 or self.waits % self.waiters_per_job:
            raise ValueError(f"invalid waits {self.waits}: give a positive multiple of "
                             f"waiters_per_job ({self.waiters_per_job})")
        if not 0 < self.first_finish <= self.last_finish:
            raise ValueError(f"invalid finish range {self.first_finish}-{self.last_finish} s: "
                             "give 0 < first_finish <= last_finish")
        if self.policy.jitter != 0:
            raise ValueError(f"invalid policy jitter {self.policy.jitter}: the schedule "
                             "bound needs a deterministic schedule, so use jitter=0")
        if not 0 <= self.latency < 60:
            raise ValueError(f"invalid latency {self.latency} s: give 0 up to 60 seconds")
        if self.max_concurrency < 1:
            raise ValueError(f"invalid max_concurrency {self.max_concurrency}: give at least 1")

    @property
    def jobs(self) -> int:
        """Number of merge jobs."""
        return self.waits // self.waiters_per_job

    @property
    def records(self) -> int:
        """Number of master records, the last one possibly with fewer jobs."""
        return -(-self.jobs // self.jobs_per_record)

    def finish_times(self) -> list[float]:
        """Seconds after being added at which each job turns COMPLETED."""
        draw = random.Random(self.seed)
        return [draw.uniform(self.first_finish, self.last_finish) for _ in range(self.jobs)]

    def job_specs(self, finishes: list[float]) -> list[dict[str, Any]]:
        """Jobs in the form the server process's add_jobs command takes."""
        return [{
            "module": MODULE,
            "master_record_id": str(FIRST_RECORD_ID + index // self.jobs_per_record),
            "timeline": [[0.0, "SCHEDULED"], [finish / 2, "RUNNING"], [finish, "COMPLETED"]],
            "latency": self.latency,
        } for index, finish in enumerate(finishes)]


@dataclass(frozen=True, slots=True)
class ModeResult:
    """Measurements of one mode."""

    mode: str
    failed_waits: int
    error_replies: int
    requests: int
    polls_per_merge: float
    scheduled_requests: int
    wall_seconds: float
    last_completion_seconds: float
    schedule_bound_seconds: float
    client_peak_in_flight: int
    server_peak_in_flight: int
    rss_growth_bytes: int
    cpu_seconds: float

    @property
    def bound_ratio(self) -> float:
        """Wall time divided by the schedule bound."""
        return self.wall_seconds / self.schedule_bound_seconds


@dataclass(frozen=True, slots=True)
class FleetResult:
    """Both modes' measurements, the process's peak RSS and the table printed for them."""

    scenario: Scenario
    modes: tuple[ModeResult, ...]
    peak_rss_bytes: int
    table: Table

    def mode(self, name: str) -> ModeResult:
        """Return the measurements of mode `name` (shared or independent)."""
        for result in self.modes:
            if result.mode == name:
                return result
        ran = ", ".join(result.mode for result in self.modes)
        raise KeyError(f"mode {name!r} was not run; this run measured: {ran}")

    @property
    def target_met(self) -> bool:
        """True when the shared mode had no failed wait and ended within the target ratio."""
        shared = self.mode("shared")
        return shared.failed_waits == 0 and shared.bound_ratio <= TARGET_BOUND_RATIO


def schedule_offsets(policy: PollPolicy, horizon: float) -> list[float]:
    """Return a wait's poll times in seconds from its start, up to the first past `horizon`."""
    offsets = [0.0]
    while offsets[-1] < horizon:
        delay = max(policy.min_interval, policy.delay(len(offsets) - 1, 0.0))
        offsets.append(offsets[-1] + delay)
    return offsets


def schedule_bound(policy: PollPolicy, completions: list[float]) -> float:
    """Return the time at which the last wait ends if every request takes no time.

    `completions` are the jobs' completion times in seconds from the start
    of the waits. Each wait then ends at the first poll of its schedule at or
    after its job's completion.
    """
    offsets = schedule_offsets(policy, max(completions))
    return max(next(offset for offset in offsets if offset >= completion)
               for completion in completions)


def scheduled_requests(mode: str, scenario: Scenario, completions: list[float]) -> int:
    """Count the requests the poll schedule calls for if every request takes no time.

    A wait polls at each offset up to the first at or after its job's
    completion. Independent waits each send all their polls. Shared waits
    send one request per record and poll time, until the record's last job
    completes.
    """
    offsets = schedule_offsets(scenario.policy, max(completions))
    polls = [1 + next(index for index, offset in enumerate(offsets) if offset >= completion)
             for completion in completions]
    if mode == "independent":
        return sum(polls) * scenario.waiters_per_job
    size = scenario.jobs_per_record
    return sum(max(polls[start:start + size]) for start in range(0, len(polls), size))


async def _sample_rss(peak: list[int]) -> None:
    while True:
        peak[0] = max(peak[0], current_rss_bytes())
        await asyncio.sleep(RSS_SAMPLE_SECONDS)


async def _wait_shared(api_domain: str, scenario: Scenario, targets: list[MergeTarget],
                       timeout: float) -> tuple[int, int]:
    """Wait for every target with one client; return failed waits and peak requests in flight."""
    limiter = ConcurrencyLimiter(scenario.max_concurrency)
    async with MergeClient(TOKEN, api_domain=api_domain, poll=scenario.policy,
                           limiter=limiter) as client:
        outcomes = await wait_all(client, targets, timeout=timeout)
    return sum(1 for outcome in outcomes if not outcome.ok), limiter.peak_in_flight


async def _wait_independent(api_domain: str, scenario: Scenario, targets: list[MergeTarget],
                            timeout: float) -> tuple[int, int]:
    """Wait for every target with its own client; return failed waits and peak in flight."""
    limiter = ConcurrencyLimiter(scenario.max_concurrency)
    connector = aiohttp.TCPConnector(limit=scenario.max_concurrency)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        clients = [MergeClient(TOKEN, api_domain=api_domain, poll=scenario.policy,
                               session=session, limiter=limiter) for _ in targets]
        try:
            results = await asyncio.gather(
                *(wait_for_merge(client, target.module, target.master_record_id,
                                 target.job_id, timeout=timeout)
                  for client, target in zip(clients, targets, strict=True)),
                return_exceptions=True)
        finally:
            for client in clients:
                await client.aclose()
    failures = sum(1 for result in results if isinstance(result, BaseException)
                   or result.status is not MergeStatus.COMPLETED)
    return failures, limiter.peak_in_flight


Runner = Callable[[str, Scenario, list[MergeTarget], float], Awaitable[tuple[int, int]]]
RUNNERS: dict[str, Runner] = {"shared": _wait_shared, "independent": _wait_independent}


@dataclass(frozen=True, slots=True)
class _Timing:
    failures: int
    peak_in_flight: int
    started: float
    finished: float
    rss_growth: int
    cpu_seconds: float


async def _run_waits(runner: Runner, api_domain: str, scenario: Scenario,
                     targets: list[MergeTarget], timeout: float) -> _Timing:
    peak = [current_rss_bytes()]
    before = peak[0]
    sampler = asyncio.create_task(_sample_rss(peak))
    cpu_start, started = time.process_time(), time.monotonic()
    try:
        failures, peak_in_flight = await runner(api_domain, scenario, targets, timeout)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    finished, cpu = time.monotonic(), time.process_time() - cpu_start
    peak[0] = max(peak[0], current_rss_bytes())
    return _Timing(failures, peak_in_flight, started, finished, peak[0] - before, cpu)


def _run_mode(mode: str, scenario: Scenario, finishes: list[float]) -> ModeResult:
    specs = scenario.job_specs(finishes)
    with ServerProcess(max_concurrency=scenario.max_concurrency) as server:
        job_ids, added_at = server.add_jobs(specs)
        targets = [MergeTarget(MODULE, spec["master_record_id"], job_id)
                   for spec, job_id in zip(specs, job_ids, strict=True)
                   for _ in range(scenario.waiters_per_job)]
        timing = asyncio.run(_run_waits(RUNNERS[mode], server.api_domain, scenario, targets,
                                        scenario.policy.timeout))
        stats = server.command("stats")

    completions = [added_at + finish - timing.started for finish in finishes]
    statuses: dict[str, int] = stats["statuses"]
    return ModeResult(
        mode=mode,
        failed_waits=timing.failures,
        error_replies=sum(count for status, count in statuses.items() if status != "200"),
        requests=int(stats["requests"]),
        polls_per_merge=int(stats["requests"]) / scenario.jobs,
        scheduled_requests=scheduled_requests(mode, scenario, completions),
        wall_seconds=timing.finished - timing.started,
        last_completion_seconds=max(completions),
        schedule_bound_seconds=schedule_bound(scenario.policy, completions),
        client_peak_in_flight=timing.peak_in_flight,
        server_peak_in_flight=int(stats["max_in_flight"]),
        rss_growth_bytes=timing.rss_growth,
        cpu_seconds=timing.cpu_seconds,
    )


def _table(scenario: Scenario, modes: list[ModeResult]) -> Table:
    rows = tuple((
        result.mode,
        f"{scenario.waits:,}",
        str(result.failed_waits),
        str(result.error_replies),
        f"{result.requests:,}",
        f"{result.scheduled_requests:,}",
        f"{result.polls_per_merge:.2f}",
        f"{result.wall_seconds:.2f}",
        f"{result.last_completion_seconds:.2f}",
        f"{result.schedule_bound_seconds:.2f}",
        f"{result.bound_ratio:.2f}",
        f"{result.client_peak_in_flight} / {result.server_peak_in_flight}",
        f"{result.rss_growth_bytes / scenario.waits / 1024:.1f}",
        f"{result.cpu_seconds:.1f}",
    ) for result in modes)
    return Table(("mode", "waits", "failed waits", "non-200 replies", "requests sent",
                  "requests scheduled", "requests sent per merge job", "wall s",
                  "last completion s", "schedule bound s", "wall / schedule bound",
                  "peak in flight (client / server)", "RSS growth per wait KiB",
                  "client CPU s"), rows)


def _parse_arguments(argv: list[str] | None) -> tuple[Scenario, list[str]]:
    parser = argparse.ArgumentParser(description="Many concurrent waits under a concurrency "
                                                 "cap, with and without shared polls.")
    parser.add_argument("--waits", type=int, default=10_000, help="waits (default 10000)")
    parser.add_argument("--waiters-per-job", type=int, default=2,
                        help="waits on each merge job (default 2)")
    parser.add_argument("--jobs-per-record", type=int, default=5,
                        help="merge jobs on each master record (default 5)")
    parser.add_argument("--first-finish", type=float, default=3.0,
                        help="earliest job completion, seconds after it is added (default 3)")
    parser.add_argument("--last-finish", type=float, default=12.0,
                        help="latest job completion, seconds after it is added (default 12)")
    parser.add_argument("--initial-delay", type=float, default=1.0,
                        help="PollPolicy.initial_delay in seconds (default 1)")
    parser.add_argument("--max-delay", type=float, default=3.0,
                        help="PollPolicy.max_delay in seconds (default 3)")
    parser.add_argument("--min-interval", type=float, default=1.0,
                        help="PollPolicy.min_interval in seconds (default 1)")
    parser.add_argument("--max-concurrency", type=int, default=25,
                        help="requests in flight at once, client cap and server limit "
                             "(default 25, Zoho's Ultimate edition)")
    parser.add_argument("--latency", type=float, default=0.02,
                        help="seconds the server waits before each reply (default 0.02)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the finish times (default 1)")
    parser.add_argument("--modes", default="shared,independent",
                        help="modes to run, comma-separated (default shared,independent)")
    arguments = parser.parse_args(argv)

    modes = [mode for mode in arguments.modes.split(",") if mode]
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        parser.error(f"invalid --modes {arguments.modes!r}: use shared, independent or both")
    try:
        policy = PollPolicy(initial_delay=arguments.initial_delay, multiplier=1.5,
                            max_delay=arguments.max_delay, jitter=0.0,
                            timeout=arguments.last_finish * 4 + 60,
                            min_interval=arguments.min_interval)
        scenario = Scenario(arguments.waits, arguments.waiters_per_job,
                            arguments.jobs_per_record, arguments.first_finish,
                            arguments.last_finish, policy, arguments.max_concurrency,
                            arguments.latency, arguments.seed)
    except ValueError as exc:
        parser.error(str(exc))
    return scenario, modes


def main(argv: list[str] | None = None) -> FleetResult:
    """Run the benchmark, print its table and return the result."""
    scenario, modes = _parse_arguments(argv)
    finishes = scenario.finish_times()
    results = tuple(_run_mode(mode, scenario, finishes) for mode in modes)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = FleetResult(scenario, results, peak_rss, _table(scenario, list(results)))

    notes = [
        f"{scenario.jobs:,} jobs on {scenario.records:,} records, finishing "
        f"{scenario.first_finish:g}-{scenario.last_finish:g} s after being added; poll delays "
        f"{scenario.policy.initial_delay:g} s x1.5 up to {scenario.policy.max_delay:g} s, "
        f"at least {scenario.policy.min_interval:g} s, no jitter; max_concurrency "
        f"{scenario.max_concurrency}; server latency {scenario.latency:g} s per reply",
        f"peak RSS of the client process: {peak_rss / 2**20:.0f} MiB",
    ]
    if "shared" in modes:
        verdict = "met" if result.target_met else "NOT met"
        notes.append(f"shared mode: wall / bound {result.mode('shared').bound_ratio:.2f}, "
                     f"target <= {TARGET_BOUND_RATIO} with no failed wait: {verdict}")
    print_report("Concurrent waits under a concurrency cap", result.table, notes)
    return result


if __name__ == "__main__":
    main()
