"""Benchmark 2: status calls per second, this SDK against Zoho's official Python SDK.

    pip install -e ".[bench]"
    python -m benchmarks.official_sdk [--calls 2000] [--rounds 3] [--threads 1,8] \\
        [--coroutines 1,50]

Both SDKs fetch the same merge job's status from one fake Zoho server in a
child process. The official SDK (`zohocrmsdk7-0`) is synchronous, so it runs
in a thread pool of each `--threads` size; this SDK runs `--coroutines`
coroutines on one `MergeClient`. Every configuration makes `--calls` calls
per round, and the report gives the median calls per second over the rounds
and the client process's CPU time per call. The official SDK keeps its token
in memory and writes no file; the run checks that no token or log file appears.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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

TARGET_SPEED_UP = 10.0
"""Smallest acceptable ratio of this SDK's best calls/s to the official SDK's best."""
MODULE = "Leads"
RECORD_ID = "2378988000000509963"
SDK_FILES = ("sdk_tokens.txt", "sdk.log", "sdk_logs.log")
"""Files the official SDK writes to the working directory with its default settings."""


@dataclass(frozen=True, slots=True)
class Run:
    """One configuration's calls in one round."""

    wall_seconds: float
    cpu_seconds: float
    errors: int


@dataclass(frozen=True, slots=True)
class Configuration:
    """A client and its concurrency, with the median over the rounds."""

    client: str
    workers: int
    calls_per_second: float
    cpu_us_per_call: float
    errors: int


@dataclass(frozen=True, slots=True)
class ComparisonResult:
    """Every configuration's medians, the speed-up and the table printed for them."""

    official: tuple[Configuration, ...]
    ours: tuple[Configuration, ...]
    speed_up: float
    table: Table

    @property
    def errors(self) -> int:
        """Calls that failed or returned another status than RUNNING, in all rounds."""
        return sum(config.errors for config in self.official + self.ours)

    @property
    def target_met(self) -> bool:
        """True when this SDK's best calls/s is at least TARGET_SPEED_UP times the official's."""
        return self.speed_up >= TARGET_SPEED_UP


def _run_threads(calls: int, threads: int, job_id: str) -> Run:
    from . import _official_sdk

    def share(count: int) -> int:
        errors = 0
        for _ in range(count):
            if _official_sdk.fetch_merge_status(MODULE, RECORD_ID, job_id) != "RUNNING":
                errors += 1
        return errors

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        errors = sum(pool.map(share, split_evenly(calls, threads)))
        wall = time.perf_counter() - wall_start
    return Run(wall, time.process_time() - cpu_start, errors)


async def _run_coroutines(client: MergeClient, calls: int, coroutines: int, job_id: str) -> Run:
    errors = 0

    async def share(count: int) -> None:
        nonlocal errors
        for _ in range(count):
            job = await client.get_merge_status(MODULE, RECORD_ID, job_id)
            if job.status is not MergeStatus.RUNNING:
                errors += 1

    cpu_start, wall_start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(share(count) for count in split_evenly(calls, coroutines)))
    return Run(time.perf_counter() - wall_start, time.process_time() - cpu_start, errors)


def _run_ours(api_domain: str, calls: int, coroutines: int, job_id: str) -> Run:
    async def run() -> Run:
        async with MergeClient(TOKEN, api_domain=api_domain) as client:
            await _run_coroutines(client, min(calls, 200), coroutines, job_id)
            return await _run_coroutines(client, calls, coroutines, job_id)

    return asyncio.run(run())


def _summarise(client: str, workers: int, calls: int, runs: list[Run]) -> Configuration:
    return Configuration(
        client, workers,
        calls_per_second=median([calls / run.wall_seconds for run in runs]),
        cpu_us_per_call=median([run.cpu_seconds / calls * 1e6 for run in runs]),
        errors=sum(run.errors for run in runs),
    )


def _check_no_sdk_files(resource_path: Path, cwd_before: set[str]) -> None:
    written = sorted(path.name for path in resource_path.iterdir())
    new_in_cwd = sorted(name for name in SDK_FILES
                        if name not in cwd_before and (Path.cwd() / name).exists())
    if written or new_in_cwd:
        raise RuntimeError(f"the official SDK wrote files: {written + new_in_cwd}; the "
                           "benchmark must keep its token in memory")


def _measure(arguments: argparse.Namespace) -> tuple[list[Configuration], list[Configuration]]:
    from . import _official_sdk

    calls = arguments.calls
    official_runs: dict[int, list[Run]] = {threads: [] for threads in arguments.threads}
    our_runs: dict[int, list[Run]] = {coroutines: [] for coroutines in arguments.coroutines}
    cwd_before = {path.name for path in Path.cwd().iterdir()}
    with ServerProcess() as server, tempfile.TemporaryDirectory() as resource_dir:
        job_ids, _ = server.add_jobs(
            [{"module": MODULE, "master_record_id": RECORD_ID, "statuses": ["RUNNING"]}])
        _official_sdk.initialise(server.api_domain, TOKEN, Path(resource_dir))
        _run_threads(min(calls, 100), 1, job_ids[0])

        for _ in range(arguments.rounds):
            for threads, runs in official_runs.items():
                server.command("reset")
                runs.append(_run_threads(calls, threads, job_ids[0]))
            for coroutines, runs in our_runs.items():
                server.command("reset")
                runs.append(_run_ours(server.api_domain, calls, coroutines, job_ids[0]))
        _check_no_sdk_files(Path(resource_dir), cwd_before)

    official = [_summarise("official SDK (zohocrmsdk7-0), threads", threads, calls, runs)
                for threads, runs in official_runs.items()]
    ours = [_summarise("zoho_merge_async, coroutines", coroutines, calls, runs)
            for coroutines, runs in our_runs.items()]
    return official, ours


def _table(official: list[Configuration], ours: list[Configuration]) -> tuple[Table, float]:
    best_official = max(config.calls_per_second for config in official)
    rows = tuple(
        (config.client, str(config.workers), f"{config.calls_per_second:,.0f}",
         f"{config.cpu_us_per_call:,.0f}", str(config.errors),
         f"{config.calls_per_second / best_official:.1f}")
        for config in official + ours)
    table = Table(("client", "threads or coroutines", "calls/s (median)", "CPU µs/call",
                   "errors", "ratio to best official"), rows)
    return table, max(config.calls_per_second for config in ours) / best_official


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Status calls per second against Zoho's "
                                                 "official Python SDK.")
    parser.add_argument("--calls", type=int, default=2000,
                        help="calls per configuration per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--threads", type=positive_counts, default=[1, 8],
                        help="official SDK thread pool sizes, comma-separated (default 1,8)")
    parser.add_argument("--coroutines", type=positive_counts, default=[1, 50],
                        help="coroutines of this SDK, comma-separated (default 1,50)")
    arguments = parser.parse_args(argv)
    for name in ("calls", "rounds"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(arguments, name)}")
    return arguments


def main(argv: list[str] | None = None) -> ComparisonResult:
    """Run the benchmark, print its table and return the result."""
    arguments = _parse_arguments(argv)
    try:
        from . import _official_sdk  # noqa: F401 (checks that the official SDK is installed)
    except ImportError as exc:
        raise SystemExit(f"the official SDK is missing ({exc}); install it with "
                         "pip install -e \".[bench]\"") from exc

    official, ours = _measure(arguments)
    table, speed_up = _table(official, ours)
    result = ComparisonResult(tuple(official), tuple(ours), speed_up, table)
    verdict = "met" if result.target_met else "NOT met"
    print_report("Status calls per second against the official SDK", table, [
        f"{arguments.rounds} rounds of {arguments.calls} calls per configuration; "
        f"speed-up {speed_up:.1f}x, target >= {TARGET_SPEED_UP:g}x: {verdict}",
    ])
    return result


if __name__ == "__main__":
    main()
