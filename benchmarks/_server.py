"""A `FakeZohoServer` in its own process, driven by JSON lines on stdin.

The benchmarks start this script as a child process, so that the server's CPU
time never counts as client CPU time. The script binds 127.0.0.1 on a free
port, writes one JSON line ``{"api_domain": ..., "pid": ...}`` to stdout, and
then writes one JSON reply line for each command line it reads from stdin:

    {"command": "add_jobs", "jobs": [JOB, ...]}
        JOB is {"module", "master_record_id", "statuses": [status, ...]} or
        {"module", "master_record_id", "timeline": [[seconds, status], ...]}, with an
        optional "latency": seconds the server waits before each reply (default 0).
        Replies {"job_ids": [...], "clock": time.monotonic() before the first job was
        added}. A timeline job's clock starts when it is added, at or after "clock";
        asyncio's loop.time() is time.monotonic(), the same clock in every process.
    {"command": "stats"}
        Replies {"requests": count, "max_in_flight": peak, "statuses": {HTTP status: count}}.
    {"command": "reset"}
        Forgets the recorded requests and restarts the in-flight peak, replies {}.

It stops when stdin closes or after --max-seconds, whichever comes first, so a
crashed benchmark never leaves it running for long. An invalid command gets
{"error": message}.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import sys
import time
from typing import Any

from zoho_merge_async.testing import FakeZohoServer, StatusReply

DEFAULT_MAX_SECONDS = 900.0
"""Lifetime of the server process in seconds, unless stdin closes earlier."""
_MAX_COMMAND_BYTES = 64 * 1024 * 1024
"""Maximum length of a command line in bytes. Adding 10,000 timeline jobs takes about 2 MiB."""


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--token", required=True, help="access token the server accepts")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                        help="seconds after which the server stops by itself (default 900)")
    parser.add_argument("--max-concurrency", type=int, default=0,
                        help="requests served at once; more get 429 TOO_MANY_REQUESTS "
                             "(default 0: no limit)")
    return parser.parse_args(argv)


def _build_server(token: str, max_concurrency: int) -> FakeZohoServer:
    """Create the server, limiting concurrent requests when `max_concurrency` is positive."""
    if max_concurrency > 0:
        return FakeZohoServer(access_tokens=(token,), max_concurrency=max_concurrency)
    return FakeZohoServer(access_tokens=(token,))


def _add_jobs(server: FakeZohoServer, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    # Read before the first job is added, so that no job's timeline starts earlier.
    clock = time.monotonic()
    job_ids = []
    for job in jobs:
        latency = float(job.get("latency", 0.0))
        if "timeline" in job:
            timeline = [(float(seconds), StatusReply(str(status), latency))
                        for seconds, status in job["timeline"]]
            job_id = server.add_job(job["module"], job["master_record_id"], timeline=timeline)
        else:
            statuses = [StatusReply(str(status), latency) for status in job["statuses"]]
            job_id = server.add_job(job["module"], job["master_record_id"], statuses)
        job_ids.append(job_id)
    return {"job_ids": job_ids, "clock": clock}


def _stats(server: FakeZohoServer, statuses: collections.Counter[int]) -> dict[str, Any]:
    return {
        "requests": len(server.requests),
        "max_in_flight": server.max_in_flight,
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
    }


def _run_command(server: FakeZohoServer, statuses: collections.Counter[int],
                 line: str) -> dict[str, Any]:
    try:
        message = json.loads(line)
        command = message["command"]
        if command == "add_jobs":
            return _add_jobs(server, message["jobs"])
        if command == "stats":
            return _stats(server, statuses)
        if command == "reset":
            server.reset_requests()
            statuses.clear()
            return {}
        return {"error": f"unknown command {command!r}: use add_jobs, stats or reset"}
    except (KeyError, TypeError, ValueError) as exc:
        return {"error": f"invalid command line {line.strip()[:200]!r}: {exc!r}"}


def _count_statuses(server: FakeZohoServer) -> collections.Counter[int]:
    """Count the HTTP status of every reply by wrapping the server's request handler."""
    statuses: collections.Counter[int] = collections.Counter()
    handle = server._handle

    async def counting_handle(request: Any) -> Any:
        response = await handle(request)
        statuses[response.status] += 1
        return response

    server._handle = counting_handle  # type: ignore[method-assign]
    return statuses


async def _serve(arguments: argparse.Namespace) -> None:
    server = _build_server(arguments.token, arguments.max_concurrency)
    statuses = _count_statuses(server)
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=_MAX_COMMAND_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    async with server:
        _write({"api_domain": server.api_domain, "pid": os.getpid()})
        while True:
            line = await commands.readline()
            if not line:
                return
            _write(_run_command(server, statuses, line.decode()))


def _write(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    """Serve until stdin closes or the lifetime ends."""
    arguments = _parse_arguments(argv)
    with contextlib.suppress(TimeoutError):
        asyncio.run(asyncio.wait_for(_serve(arguments), arguments.max_seconds))


if __name__ == "__main__":
    main()
