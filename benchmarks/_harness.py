"""Helpers shared by the benchmarks: the server child process, tables and machine facts."""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

SERVER_SCRIPT = Path(__file__).with_name("_server.py")
TOKEN = "1000.benchmark5ecr3t.0123456789abcdef"
"""Access token of the fake server. The benchmarks send it only to 127.0.0.1."""
REPLY_TIMEOUT = 60.0
"""Seconds the server process may take to start, or to reply to one command."""


class ServerError(RuntimeError):
    """The fake server process failed to start, timed out or rejected a command."""


class ServerProcess:
    """A `FakeZohoServer` running in a child process (benchmarks/_server.py).

    Use it as a context manager: it starts the child, reads its api_domain,
    and on exit closes the child's stdin (which stops it) and kills it if it
    has not stopped within a few seconds. `command` sends one command and
    returns the reply; it blocks, so call it outside timed sections.
    """

    def __init__(self, *, max_concurrency: int = 0, max_seconds: float = 900.0) -> None:
        self._arguments = [
            sys.executable, str(SERVER_SCRIPT), "--token", TOKEN,
            "--max-seconds", str(max_seconds), "--max-concurrency", str(max_concurrency),
        ]
        self._process: subprocess.Popen[str] | None = None
        self.api_domain = ""

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(
            self._arguments, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            hello = self._read_reply()
        except BaseException:
            self._stop()
            raise
        self.api_domain = str(hello["api_domain"])
        if not self.api_domain.startswith("http://127.0.0.1:"):
            self._stop()
            raise ServerError(f"the server reported api_domain {self.api_domain!r}, "
                              "expected http://127.0.0.1:PORT")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()

    def command(self, name: str, **arguments: Any) -> dict[str, Any]:
        """Send one command (add_jobs, stats or reset) and return the decoded reply."""
        process = self._running()
        assert process.stdin is not None
        process.stdin.write(json.dumps({"command": name, **arguments}) + "\n")
        process.stdin.flush()
        reply = self._read_reply()
        if "error" in reply:
            raise ServerError(f"the server rejected {name}: {reply['error']}")
        return reply

    def add_jobs(self, jobs: Sequence[dict[str, Any]]) -> tuple[list[str], float]:
        """Register jobs and return their ids and the server's time.monotonic() when added."""
        reply = self.command("add_jobs", jobs=list(jobs))
        return [str(job_id) for job_id in reply["job_ids"]], float(reply["clock"])

    def _running(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            raise ServerError("the server process is not running")
        return self._process

    def _read_reply(self) -> dict[str, Any]:
        process = self._running()
        assert process.stdout is not None
        # The server writes one line per command, so no reply waits in the read buffer, and
        # select() on the pipe returns once the next line has started to arrive.
        ready, _, _ = select.select([process.stdout], [], [], REPLY_TIMEOUT)
        if not ready:
            raise ServerError(f"the server process sent no reply within {REPLY_TIMEOUT:g} s")
        line = process.stdout.readline()
        if not line:
            raise ServerError(f"the server process exited with code {process.wait(5)}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@dataclass(frozen=True, slots=True)
class Table:
    """A result table: column names and rows of already formatted cells."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"row {row!r} has {len(row)} cells, expected "
                                 f"{len(self.columns)} ({', '.join(self.columns)})")

    def to_markdown(self) -> str:
        """Format the table as GitHub Markdown, the form docs/benchmarks.md uses."""
        lines = ["| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    """Return the median, raising ValueError for an empty sequence."""
    if not values:
        raise ValueError("median of no values: run at least one round")
    return statistics.median(values)


def split_evenly(total: int, parts: int) -> list[int]:
    """Split `total` calls between `parts` workers; the first `total % parts` get one more."""
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def positive_counts(text: str) -> list[int]:
    """Parse a comma-separated list of whole numbers of at least 1, as an argparse type."""
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"invalid list {text!r}: give whole numbers of at "
                                         "least 1, separated by commas, such as 1,8")
    return values


def machine_summary() -> str:
    """Describe the machine: core count, CPU model and Python version."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores, {model}, Python {platform.python_version()} "
            f"({platform.python_implementation()}), {platform.system()}")


def current_rss_bytes() -> int:
    """Return this process's resident set size now, from /proc/self/statm (Linux only)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def print_report(title: str, table: Table, notes: Sequence[str] = ()) -> None:
    """Print a benchmark's title, machine, table and notes to stdout."""
    print(f"## {title}")
    print(f"machine: {machine_summary()}")
    print()
    print(table.to_markdown())
    for note in notes:
        print(note)
    print(flush=True)
