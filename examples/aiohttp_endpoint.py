"""Serve merge results from an `aiohttp.web` app that shares one `MergeClient`.

`GET /merges/{module}/{record_id}/{job_id}` waits for the merge job and returns
`{"job_id": ..., "status": ...}`, or `{"error": ...}` with HTTP 400 (invalid
input), 404 (no such job), 502 (another Zoho error) or 504 (timed out). The
client is created in a `cleanup_ctx`, so every request reuses its connection
pool, and it is closed when the app shuts down.

`main()` starts the app on 127.0.0.1 with a free port, sends one request to
it, prints and returns the JSON reply, and shuts the app down. Offline, the
app talks to a fake Zoho server that the script starts on 127.0.0.1:

    python examples/aiohttp_endpoint.py

Against Zoho (ZOHO_API_DOMAIN defaults to https://www.zohoapis.com):

    export ZOHO_ACCESS_TOKEN=1000.xxxx ZOHO_API_DOMAIN=https://www.zohoapis.eu
    python examples/aiohttp_endpoint.py Leads 2378988000000509963 2423488000000513988
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from zoho_merge_async import (
    DEFAULT_API_DOMAIN,
    MergeClient,
    MergeJobNotFoundError,
    MergeTimeoutError,
    PollPolicy,
    ZohoError,
    wait_for_merge,
)
from zoho_merge_async.testing import FakeZohoServer

logger = logging.getLogger(__name__)

MERGE_CLIENT = web.AppKey("merge_client", MergeClient)
WAIT_TIMEOUT = 60.0
"""Seconds a request waits for its merge job before the endpoint responds with 504."""

FAKE_TOKEN = "example-token"
FAKE_RECORD_ID = "2378988000000509963"
FAKE_POLL = PollPolicy(initial_delay=0.2, max_delay=1.0, timeout=30.0, min_interval=0.2)


def create_app(api_domain: str, access_token: str, *, poll: PollPolicy | None = None
               ) -> web.Application:
    """Build the app. Its `MergeClient` opens at startup and closes at cleanup."""
    app = web.Application()

    async def merge_client_context(app: web.Application) -> AsyncIterator[None]:
        async with MergeClient(access_token, api_domain=api_domain, poll=poll) as client:
            app[MERGE_CLIENT] = client
            yield

    app.cleanup_ctx.append(merge_client_context)
    app.router.add_get("/merges/{module}/{record_id}/{job_id}", get_merge)
    return app


async def get_merge(request: web.Request) -> web.Response:
    """Wait for the merge job named in the path and return its final status."""
    module = request.match_info["module"]
    record_id = request.match_info["record_id"]
    job_id = request.match_info["job_id"]
    client = request.app[MERGE_CLIENT]

    try:
        job = await wait_for_merge(client, module, record_id, job_id, timeout=WAIT_TIMEOUT)
    except ValueError as exc:
        return _error_reply(request, 400, exc)
    except MergeJobNotFoundError as exc:
        return _error_reply(request, 404, exc)
    except MergeTimeoutError as exc:
        return _error_reply(request, 504, exc)
    except ZohoError as exc:
        return _error_reply(request, 502, exc)

    return web.json_response({"job_id": job.job_id, "status": job.status.value})


def _error_reply(request: web.Request, http_status: int, error: Exception) -> web.Response:
    """Log the failed wait with its path, which contains the ids, and build the JSON reply."""
    level = logging.WARNING if http_status >= 500 else logging.INFO
    logger.log(level, "GET %s failed with HTTP %d: %s", request.path, http_status, error)
    return web.json_response({"error": str(error)}, status=http_status)


async def call_endpoint(app: web.Application, path: str) -> dict[str, Any]:
    """Serve `app` on a free port of 127.0.0.1, send one GET for `path` and shut down.

    Returns the JSON body of the response.
    """
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}{path}"
        print(f"GET {url}")
        # Allow the endpoint its whole wait, plus time to respond.
        timeout = aiohttp.ClientTimeout(total=WAIT_TIMEOUT + 30)
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(url) as response:
            reply: dict[str, Any] = await response.json()
        print(f"HTTP {response.status}: {reply}")
        return reply
    finally:
        await runner.cleanup()


def merge_path(module: str, master_record_id: str, job_id: str) -> str:
    """Build the endpoint's path, percent-encoding each part so that it stays one segment."""
    parts = (quote(part, safe="") for part in (module, master_record_id, job_id))
    return "/merges/{}/{}/{}".format(*parts)


async def main(
    api_domain: str | None = None,
    access_token: str | None = None,
    *,
    module: str = "Leads",
    master_record_id: str = FAKE_RECORD_ID,
    job_id: str | None = None,
    poll: PollPolicy | None = None,
) -> dict[str, Any]:
    """Ask the endpoint once for a merge job at `api_domain`, or on a fake server if None."""
    if api_domain is not None:
        if access_token is None or job_id is None:
            raise ValueError("pass access_token and job_id together with api_domain")
        app = create_app(api_domain, access_token, poll=poll)
        return await call_endpoint(app, merge_path(module, master_record_id, job_id))

    async with FakeZohoServer(access_tokens=(FAKE_TOKEN,)) as server:
        job_id = server.add_job(module, master_record_id, timeline=[
            (0.0, "RUNNING"), (0.5, "COMPLETED")])
        print(f"started a fake Zoho server with merge job {job_id}")
        app = create_app(server.api_domain, FAKE_TOKEN, poll=poll or FAKE_POLL)
        return await call_endpoint(app, merge_path(module, master_record_id, job_id))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    token = os.environ.get("ZOHO_ACCESS_TOKEN")
    if token is None:
        asyncio.run(main())
    elif len(sys.argv) == 4:
        domain = os.environ.get("ZOHO_API_DOMAIN", DEFAULT_API_DOMAIN)
        asyncio.run(main(domain, token, module=sys.argv[1], master_record_id=sys.argv[2],
                         job_id=sys.argv[3]))
    else:
        sys.exit("usage: python examples/aiohttp_endpoint.py MODULE MASTER_RECORD_ID JOB_ID")
