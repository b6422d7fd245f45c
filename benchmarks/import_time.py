"""Benchmark 4: import time of this package against Zoho's official Python SDK.

    python -m benchmarks.import_time [--runs 15]

Each statement runs `--runs` times in a fresh interpreter (`python -c STATEMENT`,
with the interpreter of this process and bytecode caches written on the
first run), interleaved so that a slow moment
affects every statement alike. The report gives the median wall time of each,
minus the median of `python -c pass`, which is the interpreter's own start-up.
The official SDK's row imports what a merge-status call needs: the
`Initializer`, `OAuthToken` and `FindAndMergeOperations`. That row is left out
when the SDK is not installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from ._harness import Table, median, print_report

BASELINE = ("interpreter start-up (python -c pass)", "pass")
OUR_PACKAGE = ("zoho_merge_async", "import zoho_merge_async")
AIOHTTP = ("aiohttp alone (a dependency of zoho_merge_async)", "import aiohttp")
OFFICIAL_SDK = (
    "official SDK (zohocrmsdk7-0): Initializer, OAuthToken, FindAndMergeOperations",
    "from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer\n"
    "from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken\n"
    "from zohocrmsdk.src.com.zoho.crm.api.find_and_merge import FindAndMergeOperations",
)


@dataclass(frozen=True, slots=True)
class ImportTime:
    """Median import time of one statement in milliseconds, start-up subtracted."""

    name: str
    statement: str
    milliseconds: float


@dataclass(frozen=True, slots=True)
class ImportResult:
    """Every statement's import time, the start-up time and the table printed for them."""

    startup_ms: float
    times: tuple[ImportTime, ...]
    table: Table

    def milliseconds(self, name: str) -> float:
        """Return the import time of the statement called `name`."""
        for entry in self.times:
            if entry.name == name:
                return entry.milliseconds
        raise KeyError(f"no import time for {name!r}; measured: "
                       f"{', '.join(entry.name for entry in self.times)}")


def _time_once(statement: str) -> float:
    """Run `statement` in a fresh interpreter and return the wall time in seconds.

    PYTHONDONTWRITEBYTECODE is removed from the child's environment, so that the
    first run writes bytecode caches and later runs read them, as an installed
    package would.
    """
    environment = {name: value for name, value in os.environ.items()
                   if name != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, env=environment)
    return time.perf_counter() - start


def _statements() -> list[tuple[str, str]]:
    statements = [BASELINE, OUR_PACKAGE, AIOHTTP]
    if importlib.util.find_spec("zohocrmsdk") is not None:
        statements.append(OFFICIAL_SDK)
    return statements


def measure(runs: int) -> ImportResult:
    """Time every statement `runs` times and return the medians."""
    statements = _statements()
    samples: dict[str, list[float]] = {name: [] for name, _ in statements}
    for _, statement in statements:
        _time_once(statement)  # writes bytecode caches and warms the file system cache
    for _ in range(runs):
        for name, statement in statements:
            samples[name].append(_time_once(statement))

    startup = median(samples[BASELINE[0]]) * 1000
    times = tuple(ImportTime(name, statement, median(samples[name]) * 1000 - startup)
                  for name, statement in statements[1:])
    ours = times[0].milliseconds
    rows = [(BASELINE[0], f"{startup:.1f}", "")]
    rows.extend((entry.name, f"{entry.milliseconds:.1f}", f"{entry.milliseconds / ours:.2f}")
                for entry in times)
    table = Table(("statement", "median ms (start-up subtracted)", "ratio to zoho_merge_async"),
                  tuple(rows))
    return ImportResult(startup, times, table)


def main(argv: list[str] | None = None) -> ImportResult:
    """Run the benchmark, print its table and return the result."""
    parser = argparse.ArgumentParser(description="Import time against Zoho's official SDK.")
    parser.add_argument("--runs", type=int, default=15,
                        help="fresh interpreters per statement (default 15)")
    arguments = parser.parse_args(argv)
    if arguments.runs < 1:
        parser.error(f"--runs must be at least 1, got {arguments.runs}")

    result = measure(arguments.runs)
    print_report("Import time", result.table, [
        f"median of {arguments.runs} fresh interpreters per statement ({sys.executable})",
    ])
    return result


if __name__ == "__main__":
    main()
