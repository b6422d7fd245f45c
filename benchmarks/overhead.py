"""Benchmark 1: client CPU time per `get_merge_status` call against a bare aiohttp loop.

    python -m benchmarks.overhead [--calls 1000] [--rounds 31] [--concurrency 1,10]

The fake Zoho server runs in a child process, so `time.process_time()` in
this process counts only client work. That is building the request, aiohttp's
sending and parsing, reading the body and decoding the JSON. For the SDK it
also includes validation, the request limiter, the retry wrapper and the
translation into a `MergeJob`. The baseline is a loop on one `aiohttp.ClientSession` that
sends the same GET with the same header, passing the job id in `params`,
reads the body and takes the status out of the JSON.

The SDK keeps each status URL with its query built, so aiohttp does not merge
`params` into it on every call. A third loop, the baseline with such a
prebuilt URL, shows how much of the difference comes from that. The target
compares the SDK with the plain baseline.

For each `--concurrency` level, each round runs the three loops one after
the other, starting from a different loop each round, with that many
coroutines sharing `--calls` calls. A warm-up round of each is not counted.
The rounds are short, so the loops of a round see nearly the same load from
other processes on the machine. The report gives the median CPU microseconds
per call of each loop, and the median over the rounds of the SDK's CPU time
divided by a baseline's in the same round (the paired ratio). The paired
ratio against the plain baseline is the figure compared with the target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL

from zoho_merge_async import MergeClient, MergeStatus

from ._harness import (
    TOKEN,
    ServerProcess,
    Table,
    median,
    positive_counts,
    print_report,
    split_evenly,
)

TARGET_RATIO = 1.15
"""Largest acceptable SDK CPU time per call, as a multiple of the bare loop's."""
MODULE = "Leads"
RECORD_ID = "2378988000000509963"


@dataclass(frozen=True, slots=True)
class RoundTiming:
    """CPU and wall time of one loop in one round."""

    cpu_seconds: float
    wall_seconds: float
    errors: int


@dataclass(frozen=True, slots=True)
class LevelResult:
    """Medians over the rounds of one concurrency level, in CPU microseconds per call."""

    concurrency: int
    bare_cpu_us: float
    sdk_cpu_us: float
    paired_ratio: float
    prebuilt_cpu_us: float
    """The baseline's CPU time per call with the URL and its query built once."""
    prebuilt_ratio: float
    """Median of paired rounds of the SDK's CPU time over the prebuilt-URL baseline's."""
    errors: int

    @property
    def target_met(self) -> bool:
        """True when the SDK's CPU time per call is at most TARGET_RATIO times the bare loop's."""
        return self.paired_ratio <= TARGET_RATIO


@dataclass(frozen=True, slots=True)
class OverheadResult:
    """Every concurrency level's medians and the table printed for them."""

    calls_per_round: int
    rounds: int
    levels: tuple[LevelResult, ...]
    table: Table

    @property
    def errors(self) -> int:
        """Calls that failed or returned another status than RUNNING, in all loops."""
        return sum(level.errors for level in self.levels)


Call = Callable[[], Awaitable[bool]]


async def _timed(call: Call, calls: int, concurrency: int) -> RoundTiming:
    """Run `calls` calls on `concurrency` coroutines and measure CPU and wall time."""
    errors = 0

    async def worker(count: int) -> None:
        nonlocal errors
        for _ in range(count):
            if not await call():
                errors += 1

    shares = split_evenly(calls, concurrency)
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(share) for share in shares))
    return RoundTiming(time.process_time() - cpu_start, time.perf_counter() - wall_start, errors)


def _bare_call(session: aiohttp.ClientSession, url: str | URL,
               params: Mapping[str, str] | None) -> Call:
    headers = {"Authorization": f"Zoho-oauthtoken {TOKEN}"}

    async def call() -> bool:
        async with session.get(url, params=params, headers=headers) as response:
            body = await response.read()
        status = json.loads(body)["merge"][0]["status"]
        return response.status == 200 and bool(status == "RUNNING")

    return call


def _sdk_call(client: MergeClient, job_id: str) -> Call:
    async def call() -> bool:
        job = await client.get_merge_status(MODULE, RECORD_ID, job_id)
        return job.status is MergeStatus.RUNNING

    return call


def _paired_ratio(rounds: list[RoundTiming], baseline_rounds: list[RoundTiming]) -> float:
    return median([timing.cpu_seconds / baseline.cpu_seconds
                   for timing, baseline in zip(rounds, baseline_rounds, strict=True)])


async def _measure_level(calls: dict[str, Call], concurrency: int,
                         arguments: argparse.Namespace,
                         reset: Callable[[], object]) -> LevelResult:
    rounds: dict[str, list[RoundTiming]] = {name: [] for name in calls}
    for call in calls.values():
        await _timed(call, min(arguments.calls, 500), concurrency)

    names = list(calls)
    for round_index in range(arguments.rounds):
        reset()
        # Each loop starts the round equally often, so no loop always runs first or last.
        start = round_index % len(names)
        for name in names[start:] + names[:start]:
            rounds[name].append(await _timed(calls[name], arguments.calls, concurrency))

    calls_per_round: int = arguments.calls

    def cpu_us(name: str) -> float:
        return median([timing.cpu_seconds for timing in rounds[name]]) * 1e6 / calls_per_round

    return LevelResult(
        concurrency,
        bare_cpu_us=cpu_us("bare"),
        sdk_cpu_us=cpu_us("sdk"),
        paired_ratio=_paired_ratio(rounds["sdk"], rounds["bare"]),
        prebuilt_cpu_us=cpu_us("prebuilt"),
        prebuilt_ratio=_paired_ratio(rounds["sdk"], rounds["prebuilt"]),
        errors=sum(timing.errors for timings in rounds.values() for timing in timings),
    )


async def _measure(api_domain: str, job_id: str, arguments: argparse.Namespace,
                   reset: Callable[[], object]) -> list[LevelResult]:
    async with aiohttp.ClientSession(trust_env=False) as session, \
            MergeClient(TOKEN, api_domain=api_domain) as client:
        url = f"{api_domain}/crm/v7/{MODULE}/{RECORD_ID}/actions/merge"
        calls = {
            "bare": _bare_call(session, url, {"job_id": job_id}),
            "sdk": _sdk_call(client, job_id),
            "prebuilt": _bare_call(session, URL(url).with_query(job_id=job_id), None),
        }
        return [await _measure_level(calls, concurrency, arguments, reset)
                for concurrency in arguments.concurrency]


def _table(levels: list[LevelResult]) -> Table:
    rows = tuple((
        str(level.concurrency),
        f"{level.bare_cpu_us:.1f}",
        f"{level.sdk_cpu_us:.1f}",
        f"{level.sdk_cpu_us - level.bare_cpu_us:.1f}",
        f"{level.paired_ratio:.2f}",
        "met" if level.target_met else "not met",
        f"{level.prebuilt_cpu_us:.1f}",
        f"{level.prebuilt_ratio:.2f}",
        str(level.errors),
    ) for level in levels)
    return Table(("coroutines", "bare aiohttp CPU µs/call", "MergeClient CPU µs/call",
                  "difference µs", "CPU ratio (median of paired rounds)",
                  f"target <= {TARGET_RATIO}", "bare aiohttp, prebuilt URL, CPU µs/call",
                  "CPU ratio to prebuilt-URL loop", "errors"), rows)


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="CPU time per get_merge_status call against "
                                                 "a bare aiohttp loop.")
    parser.add_argument("--calls", type=int, default=1000,
                        help="calls per loop per round (default 1000)")
    parser.add_argument("--rounds", type=int, default=31,
                        help="rounds of the three loops per level, each round starting "
                             "from another loop (default 31)")
    parser.add_argument("--concurrency", type=positive_counts, default=[1, 10],
                        help="coroutines sharing the calls of a loop, one level or several "
                             "separated by commas (default 1,10)")
    arguments = parser.parse_args(argv)
    for name in ("calls", "rounds"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(arguments, name)}")
    return arguments


def main(argv: list[str] | None = None) -> OverheadResult:
    """Run the benchmark, print its table and return the result."""
    arguments = _parse_arguments(argv)
    with ServerProcess() as server:
        job_ids, _ = server.add_jobs(
            [{"module": MODULE, "master_record_id": RECORD_ID, "statuses": ["RUNNING"]}])
        levels = asyncio.run(_measure(server.api_domain, job_ids[0], arguments,
                                      lambda: server.command("reset")))
    result = OverheadResult(arguments.calls, arguments.rounds, tuple(levels), _table(levels))
    print_report("Client CPU time per status call", result.table, [
        f"{arguments.rounds} rounds of {arguments.calls} calls per loop and level",
    ])
    return result


if __name__ == "__main__":
    main()
