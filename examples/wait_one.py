"""Wait for one Zoho CRM merge job to finish and print its final status.

Offline, against a fake Zoho server that the script starts on 127.0.0.1:

    python examples/wait_one.py

Against Zoho, with an access token that has the ZohoCRM.modules.<module>.READ
scope. ZOHO_API_DOMAIN defaults to https://www.zohoapis.com (US data centre),
and without a job id the script follows the record's only merge job:

    export ZOHO_ACCESS_TOKEN=1000.xxxx ZOHO_API_DOMAIN=https://www.zohoapis.eu
    python examples/wait_one.py Leads 2378988000000509963 [2423488000000513988]

The exit code is 0 if the merge completed and 1 otherwise.
"""

from __future__ import annotations

import asyncio
import os
import sys

from zoho_merge_async import (
    DEFAULT_API_DOMAIN,
    MergeClient,
    MergeJob,
    MergeStatus,
    PollPolicy,
    wait_for_merge,
)
from zoho_merge_async.testing import FakeZohoServer

FAKE_TOKEN = "example-token"
FAKE_RECORD_ID = "2378988000000509963"
# The fake job finishes within a second, so poll it more often than Zoho's default policy.
FAKE_POLL = PollPolicy(initial_delay=0.2, max_delay=1.0, timeout=30.0, min_interval=0.2)


async def wait_one(client: MergeClient, module: str, master_record_id: str,
                   job_id: str | None) -> MergeJob:
    """Wait for the merge job and print what happens."""
    print(f"waiting for merge job {job_id or '(the only one)'} of {module} record "
          f"{master_record_id} at {client.api_domain}")
    job = await wait_for_merge(client, module, master_record_id, job_id)
    print(f"merge job {job.job_id} is {job.status.value} "
          f"after {client.stats.requests_sent} requests")
    return job


async def main(
    api_domain: str | None = None,
    access_token: str | None = None,
    *,
    module: str = "Leads",
    master_record_id: str = FAKE_RECORD_ID,
    job_id: str | None = None,
    poll: PollPolicy | None = None,
) -> MergeJob:
    """Wait for one merge job at `api_domain`, or on a fake server started here if None.

    `poll` defaults to the SDK's `PollPolicy()` against Zoho and to a fast
    policy against the fake server.
    """
    if api_domain is not None:
        if access_token is None:
            raise ValueError("access_token is missing: pass it together with api_domain")
        async with MergeClient(access_token, api_domain=api_domain, poll=poll) as client:
            return await wait_one(client, module, master_record_id, job_id)

    async with FakeZohoServer(access_tokens=(FAKE_TOKEN,)) as server:
        job_id = server.add_job(module, master_record_id, timeline=[
            (0.0, "SCHEDULED"), (0.3, "RUNNING"), (0.8, "COMPLETED")])
        print(f"started a fake Zoho server with merge job {job_id}")
        async with MergeClient(FAKE_TOKEN, api_domain=server.api_domain,
                               poll=poll or FAKE_POLL) as client:
            return await wait_one(client, module, master_record_id, job_id)


if __name__ == "__main__":
    token = os.environ.get("ZOHO_ACCESS_TOKEN")
    if token is None:
        merged = asyncio.run(main())
    elif len(sys.argv) in (3, 4):
        module_name, record_id, *job = sys.argv[1:]
        domain = os.environ.get("ZOHO_API_DOMAIN", DEFAULT_API_DOMAIN)
        merged = asyncio.run(main(domain, token, module=module_name, master_record_id=record_id,
                                  job_id=job[0] if job else None))
    else:
        sys.exit("usage: python examples/wait_one.py MODULE MASTER_RECORD_ID [JOB_ID]")
    sys.exit(0 if merged.status is MergeStatus.COMPLETED else 1)
