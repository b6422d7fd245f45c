"""Wait for the merges of many master records at once and summarise the outcomes.

One `MergeClient` serves all waits through `wait_many`, which yields each
outcome as its wait ends. An outcome carries the final job or the `ZohoError`
that ended that wait, so one failed wait does not cancel the others.

Offline, against a fake Zoho server that the script starts on 127.0.0.1:

    python examples/wait_many.py

Against Zoho (ZOHO_API_DOMAIN defaults to https://www.zohoapis.com), with one
MODULE/MASTER_RECORD_ID/JOB_ID argument per merge job:

    export ZOHO_ACCESS_TOKEN=1000.xxxx ZOHO_API_DOMAIN=https://www.zohoapis.eu
    python examples/wait_many.py Leads/2378988000000509963/2423488000000513988 \\
        Contacts/2378988000000512001/2423488000000514002

Against Zoho, the exit code is 0 if every merge completed and 1 otherwise.
The offline run scripts failures on purpose and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections import Counter

from zoho_merge_async import (
    DEFAULT_API_DOMAIN,
    MergeClient,
    MergeTarget,
    PollPolicy,
    RetryPolicy,
    wait_many,
)
from zoho_merge_async.testing import FakeZohoServer, Step, ZohoErrorReply

FAKE_TOKEN = "example-token"
FAKE_POLL = PollPolicy(initial_delay=0.2, max_delay=1.0, timeout=30.0, min_interval=0.2)
FAKE_RETRY = RetryPolicy(initial_delay=0.1, max_delay=0.5)
FAKE_MODULES = ("Leads", "Contacts", "Accounts", "Deals")
FAKE_RECORD_COUNT = 12
FAKE_FAILURES = 2
UNKNOWN_JOB_ID = "2423488000000999999"


async def count_outcomes(client: MergeClient, targets: list[MergeTarget]) -> Counter[str]:
    """Wait for every target at once and count the outcomes.

    An outcome is the final status (COMPLETED or FAILURE) or the name of the
    `ZohoError` that ended the wait.
    """
    outcomes: Counter[str] = Counter()
    async with contextlib.aclosing(wait_many(client, targets)) as results:
        async for result in results:
            target = result.target
            if result.error is not None:
                print(f"{target.module} record {target.master_record_id}: {result.error}")
                outcomes[type(result.error).__name__] += 1
            elif result.job is not None:
                print(f"{target.module} record {target.master_record_id}: "
                      f"job {result.job.job_id} {result.job.status.value}")
                outcomes[result.job.status.value] += 1

    print(f"{len(targets)} waits, {client.stats.requests_sent} requests: "
          + ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items())))
    return outcomes


def add_fake_jobs(server: FakeZohoServer) -> list[MergeTarget]:
    """Script a merge job on each fake record: most complete, a few fail, one retries.

    The last target names a job id that does not exist, so its wait raises
    `MergeJobNotFoundError`.
    """
    targets = []
    for index in range(FAKE_RECORD_COUNT):
        module = FAKE_MODULES[index % len(FAKE_MODULES)]
        record_id = str(2378988000000510001 + index)
        final = "FAILURE" if index < FAKE_FAILURES else "COMPLETED"
        steps: list[Step] = ["SCHEDULED", "RUNNING", final]
        if index == FAKE_FAILURES:
            steps.insert(1, ZohoErrorReply("INTERNAL_ERROR"))
        targets.append(MergeTarget(module, record_id, server.add_job(module, record_id, steps)))
    targets.append(MergeTarget("Leads", targets[0].master_record_id, UNKNOWN_JOB_ID))
    return targets


async def main(
    api_domain: str | None = None,
    access_token: str | None = None,
    *,
    targets: list[MergeTarget] | None = None,
    poll: PollPolicy | None = None,
) -> Counter[str]:
    """Wait for `targets` at `api_domain`, or for scripted jobs on a fake server if None."""
    if api_domain is not None:
        if access_token is None or not targets:
            raise ValueError("pass access_token and at least one target with api_domain")
        async with MergeClient(access_token, api_domain=api_domain, poll=poll) as client:
            return await count_outcomes(client, targets)

    async with FakeZohoServer(access_tokens=(FAKE_TOKEN,)) as server:
        fake_targets = add_fake_jobs(server)
        print(f"started a fake Zoho server with {len(fake_targets) - 1} merge jobs")
        async with MergeClient(FAKE_TOKEN, api_domain=server.api_domain,
                               poll=poll or FAKE_POLL, retry=FAKE_RETRY) as client:
            return await count_outcomes(client, fake_targets)


if __name__ == "__main__":
    token = os.environ.get("ZOHO_ACCESS_TOKEN")
    if token is None:
        asyncio.run(main())
        sys.exit(0)

    parts = [argument.split("/") for argument in sys.argv[1:]]
    if not parts or any(len(part) != 3 for part in parts):
        sys.exit("usage: python examples/wait_many.py MODULE/MASTER_RECORD_ID/JOB_ID ...")
    domain = os.environ.get("ZOHO_API_DOMAIN", DEFAULT_API_DOMAIN)
    counts = asyncio.run(main(domain, token, targets=[MergeTarget(*part) for part in parts]))
    sys.exit(0 if set(counts) == {"COMPLETED"} else 1)
