"""arq worker settings: one `MergeClient` per process, sharing Zoho's budget through Redis.

Start one or more workers from the repository root, on one or many machines
that reach the same Redis (settings: see config.py)::

    REDIS_URL=redis://127.0.0.1:6379/0 ZOHO_ACCESS_TOKEN=1000.xxxx \\
        python -m arq examples.arq_worker.worker.WorkerSettings

Jobs and results go through Redis as JSON, not arq's default pickle.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Mapping
from typing import Any, ClassVar

from arq.connections import RedisSettings
from arq.worker import Function, func

from zoho_merge_async import MergeClient, RefreshTokenProvider, TokenProvider

from .config import JOB_FUNCTION, QUEUE_NAME, dump_json, load_json, load_settings
from .jobs import Runtime, merge_and_report
from .redis_limiter import RedisLimiter

logger = logging.getLogger("arq_worker")

settings = load_settings()


def token_from_env(environ: Mapping[str, str] = os.environ) -> str | TokenProvider:
    """Return ZOHO_ACCESS_TOKEN, or a provider that refreshes tokens from the client variables.

    Raises ValueError when neither is set.
    """
    token = environ.get("ZOHO_ACCESS_TOKEN")
    if token:
        return token
    names = ("ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN")
    values = [environ.get(name, "") for name in names]
    if not all(values):
        raise ValueError("no Zoho credentials: set ZOHO_ACCESS_TOKEN, or ZOHO_CLIENT_ID, "
                         "ZOHO_CLIENT_SECRET and ZOHO_REFRESH_TOKEN")
    # NOTE: every worker process refreshes its own token, and Zoho allows 10 refreshes per
    # 10 minutes per refresh token, so start at most a few workers per refresh token at once.
    return RefreshTokenProvider(*values, data_centre=environ.get("ZOHO_DATA_CENTRE", "US"))


async def startup(ctx: dict[str, Any]) -> None:
    """Create this process's `MergeClient`, whose requests take slots of the shared budget."""
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)

    limiter = RedisLimiter(ctx["redis"], budget=settings.concurrency_budget,
                           lease=settings.slot_lease, max_wait=settings.request_timeout)
    auth = token_from_env()
    client = MergeClient(auth, api_domain=settings.api_domain, limiter=limiter,
                         poll=settings.poll_policy, request_timeout=settings.request_timeout,
                         rate_limit="slow_down")
    worker = f"{socket.gethostname()}:{os.getpid()}"
    ctx["merge_runtime"] = Runtime(client, settings, worker)
    ctx["merge_limiter"] = limiter
    ctx["merge_auth"] = auth
    logger.info("worker %s started: API domain %s, budget %d requests shared through Redis",
                worker, client.api_domain, settings.concurrency_budget)


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close the client and its token provider, and finish writing slot releases."""
    runtime: Runtime | None = ctx.get("merge_runtime")
    if runtime is None:
        return
    await runtime.client.aclose()
    if isinstance(ctx["merge_auth"], RefreshTokenProvider):
        await ctx["merge_auth"].aclose()
    await ctx["merge_limiter"].aclose()
    logger.info("worker %s stopped", runtime.worker)


class WorkerSettings:
    """Settings that `arq` reads: the job function, Redis, the queue and the time limits."""

    functions: ClassVar[list[Function]] = [
        func(merge_and_report, name=JOB_FUNCTION, max_tries=settings.max_tries,
             timeout=settings.job_timeout)]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings.from_dsn(settings.redis_url)
    queue_name = QUEUE_NAME
    job_timeout = settings.job_timeout
    max_tries = settings.max_tries
    job_serializer = dump_json
    job_deserializer = load_json
    keep_result = 3600
