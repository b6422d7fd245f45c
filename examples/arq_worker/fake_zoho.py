"""A fake Zoho CRM for the arq example, in its own process on 127.0.0.1.

It serves `FakeZohoServer` with `count` merges ready to run: every fifth one
is merged at once, the others are scheduled as jobs that take a few seconds
and end COMPLETED or, for every fifth one from the fourth, FAILURE. Run it
from the repository root::

    ZOHO_ACCESS_TOKEN=example-token python -m examples.arq_worker.fake_zoho --dir /tmp/fake

In `--dir` it writes `merges.json` (the merges, each with the `expected`
outcome, in the format `enqueue --from-file` reads) and then `server.json`
with the `api_domain`, which it also prints. On SIGTERM or SIGINT it writes
`stats.json` (peak requests in flight, 429 responses, requests per method and
merge requests per master record) and exits. With `--max-concurrency` it
responds 429 to a request beyond that many in flight, as Zoho does.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
from pathlib import Path
from typing import Any

from zoho_merge_async.testing import FakeZohoServer, StatusReply

MODULE = "Leads"
FIRST_RECORD_ID = 2378988000000700000
KINDS = ("MERGED", "COMPLETED", "COMPLETED", "FAILURE", "COMPLETED")
"""Expected outcome of merge i is KINDS[i % 5]."""

RELATED_RECORDS_OF_SCHEDULED = 5000
"""Related records of a child that makes Zoho schedule the merge (more than 1000)."""


def build_scenario(count: int) -> list[dict[str, Any]]:
    """Return `count` merges, each with its ids, `expected` outcome and job duration in seconds."""
    merges = []
    for index in range(count):
        master = FIRST_RECORD_ID + 10 * index
        merges.append({
            "module": MODULE,
            "master_record_id": str(master),
            "child_ids": [str(master + 1)],
            "expected": KINDS[index % len(KINDS)],
            "duration": 3.0 + index % 4,
        })
    return merges


def script_merges(server: FakeZohoServer, merges: list[dict[str, Any]],
                  reply_delay: float) -> None:
    """Add the records of each merge and script the job of each scheduled one."""
    for merge in merges:
        module, master = merge["module"], merge["master_record_id"]
        scheduled = merge["expected"] != "MERGED"
        server.merges.add_record(module, master)
        for child in merge["child_ids"]:
            server.merges.add_record(
                module, child, related_records=RELATED_RECORDS_OF_SCHEDULED if scheduled else 0)
        if scheduled:
            server.merges.script_job(module, master, timeline=[
                (0.0, StatusReply("SCHEDULED", delay=reply_delay)),
                (1.0, StatusReply("RUNNING", delay=reply_delay)),
                (merge["duration"], StatusReply(merge["expected"], delay=reply_delay)),
            ])


def collect_stats(server: FakeZohoServer) -> dict[str, Any]:
    """Return the server's counts of requests, peak concurrency and 429 responses."""
    methods = collections.Counter(request.method for request in server.requests)
    posts = collections.Counter(request.path.split("/")[4] for request in server.requests
                                if request.method == "POST")
    return {"max_in_flight": server.max_in_flight, "rate_limited": server.rate_limited,
            "requests": dict(methods), "posts": dict(posts)}


def write_json(path: Path, value: object) -> None:
    """Write `value` to `path` through a temporary file, so readers never see half a file."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(value, indent=1))
    partial.replace(path)


async def serve(directory: Path, count: int, max_concurrency: int | None, reply_delay: float,
                port: int) -> None:
    """Run the server until SIGTERM or SIGINT, then write its stats."""
    token = os.environ.get("ZOHO_ACCESS_TOKEN", "example-token")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    merges = build_scenario(count)
    async with FakeZohoServer(access_tokens=(token,), port=port,
                              max_concurrency=max_concurrency) as server:
        script_merges(server, merges, reply_delay)
        write_json(directory / "merges.json", merges)
        write_json(directory / "server.json", {"api_domain": server.api_domain})
        print(server.api_domain, flush=True)
        await stop.wait()
        write_json(directory / "stats.json", collect_stats(server))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a fake Zoho CRM for the arq example.")
    parser.add_argument("--dir", type=Path, required=True,
                        help="folder for merges.json, server.json and stats.json")
    parser.add_argument("--merges", type=int, default=20, help="number of merges (default 20)")
    parser.add_argument("--max-concurrency", type=int, default=None,
                        help="respond 429 beyond this many requests in flight (default: no limit)")
    parser.add_argument("--reply-delay", type=float, default=0.2,
                        help="seconds each status reply takes (default 0.2)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any)")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args.dir, args.merges, args.max_concurrency, args.reply_delay, args.port))


if __name__ == "__main__":
    main()
