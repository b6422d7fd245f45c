"""Wait for merge jobs with a pool of workers fed by an `asyncio.Queue`.

A producer puts (module, master record id, job id) items on a bounded queue,
and three workers take them one at a time. So at most three waits, and at
most three requests, run at once however many jobs arrive, which keeps the
program within Zoho's cap on concurrent API calls per organisation. The
producer ends the queue with one stop marker per worker, so every worker
finishes its current wait and returns, and nothing is cancelled.

Offline, against a fake Zoho server that the script starts on 127.0.0.1:

    python examples/queue_worker.py

Against Zoho (ZOHO_API_DOMAIN defaults to https://www.zohoapis.com), with one
MODULE/MASTER_RECORD_ID/JOB_ID argument per merge job:

    export ZOHO_ACCESS_TOKEN=1000.xxxx ZOHO_API_DOMAIN=https://www.zohoapis.eu
    python examples/queue_worker.py Leads/2378988000000509963/2423488000000513988
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import NamedTuple

from zoho_merge_async import (
    DEFAULT_API_DOMAIN,
    MergeClient,
    PollPolicy,
    ZohoError,
    wait_for_merge,
)
from zoho_merge_async.testing import FakeZohoServer

WORKER_COUNT = 3
QUEUE_SIZE = 2 * WORKER_COUNT
"""Maximum number of queued items. A producer that finds the queue full waits."""

FAKE_TOKEN = "example-token"
FAKE_POLL = PollPolicy(initial_delay=0.2, max_delay=1.0, timeout=30.0, min_interval=0.2)
FAKE_MODULES = ("Leads", "Contacts", "Deals")
FAKE_JOB_COUNT = 8


class WorkItem(NamedTuple):
    """One merge job to wait for."""

    module: str
    master_record_id: str
    job_id: str


async def produce(queue: asyncio.Queue[WorkItem | None], items: list[WorkItem]) -> None:
    """Put every item on the queue, then one stop marker (None) per worker."""
    for item in items:
        await queue.put(item)
    for _ in range(WORKER_COUNT):
        await queue.put(None)


async def work(name: str, client: MergeClient, queue: asyncio.Queue[WorkItem | None],
               results: dict[str, str]) -> None:
    """Wait for queued merge jobs one at a time until a stop marker arrives.

    Stores each job's final status, or the name of the `ZohoError` that ended
    the wait, in `results` under the job id.
    """
    while (item := await queue.get()) is not None:
        try:
            job = await wait_for_merge(client, *item)
        except ZohoError as exc:
            results[item.job_id] = type(exc).__name__
            print(f"{name}: job {item.job_id} of {item.module} record "
                  f"{item.master_record_id}: {exc}")
            continue
        results[item.job_id] = job.status.value
        print(f"{name}: job {job.job_id} of {item.module} record {item.master_record_id} "
              f"is {job.status.value}")


async def process(client: MergeClient, items: list[WorkItem]) -> dict[str, str]:
    """Run the producer and `WORKER_COUNT` workers over `items` and return the results."""
    queue: asyncio.Queue[WorkItem | None] = asyncio.Queue(maxsize=QUEUE_SIZE)
    results: dict[str, str] = {}
    async with asyncio.TaskGroup() as group:
        group.create_task(produce(queue, items))
        for number in range(1, WORKER_COUNT + 1):
            group.create_task(work(f"worker {number}", client, queue, results))
    print(f"{len(results)} jobs done with {WORKER_COUNT} workers, "
          f"{client.stats.requests_sent} requests")
    return results


def add_fake_jobs(server: FakeZohoServer) -> list[WorkItem]:
    """Script merge jobs that finish 0.3 to 1.0 s after they start. The last one fails."""
    items = []
    for index in range(FAKE_JOB_COUNT):
        module = FAKE_MODULES[index % len(FAKE_MODULES)]
        record_id = str(2378988000000520001 + index)
        final = "FAILURE" if index == FAKE_JOB_COUNT - 1 else "COMPLETED"
        finished_at = 0.3 + 0.1 * index
        job_id = server.add_job(module, record_id, timeline=[
            (0.0, "SCHEDULED"), (0.1, "RUNNING"), (finished_at, final)])
        items.append(WorkItem(module, record_id, job_id))
    return items


async def main(
    api_domain: str | None = None,
    access_token: str | None = None,
    *,
    items: list[WorkItem] | None = None,
    poll: PollPolicy | None = None,
) -> dict[str, str]:
    """Process `items` at `api_domain`, or scripted jobs on a fake server if None.

    Returns each job's final status, or the name of the error that ended its wait.
    """
    if api_domain is not None:
        if access_token is None or not items:
            raise ValueError("pass access_token and at least one item with api_domain")
        async with MergeClient(access_token, api_domain=api_domain, poll=poll) as client:
            return await process(client, items)

    async with FakeZohoServer(access_tokens=(FAKE_TOKEN,)) as server:
        fake_items = add_fake_jobs(server)
        print(f"started a fake Zoho server with {len(fake_items)} merge jobs")
        async with MergeClient(FAKE_TOKEN, api_domain=server.api_domain,
                               poll=poll or FAKE_POLL) as client:
            return await process(client, fake_items)


if __name__ == "__main__":
    token = os.environ.get("ZOHO_ACCESS_TOKEN")
    if token is None:
        asyncio.run(main())
        sys.exit(0)

    parts = [argument.split("/") for argument in sys.argv[1:]]
    if not parts or any(len(part) != 3 for part in parts):
        sys.exit("usage: python examples/queue_worker.py MODULE/MASTER_RECORD_ID/JOB_ID ...")
    domain = os.environ.get("ZOHO_API_DOMAIN", DEFAULT_API_DOMAIN)
    results = asyncio.run(main(domain, token, items=[WorkItem(*part) for part in parts]))
    sys.exit(0 if set(results.values()) == {"COMPLETED"} else 1)
