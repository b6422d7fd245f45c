"""The arq job that starts one merge, waits for it across worker restarts and reports it once.

arq runs a job at least once. A job whose worker died runs again once the
worker's lock on it expires (arq's in-progress key, `job_timeout` + 10 s
after the try started). A job that raises `arq.Retry` runs again after the
delay it requests. Each try of `merge_and_report` does what is left:

1. An outcome is stored: return it.
2. A wait state is stored: resume the wait from it.
3. No start marker: set the marker, send the merge request, and store the
   job's wait state at once (or report a merge done at once).
4. A start marker but no wait state: an earlier try may have sent the
   request and died before storing the job id. Look for the job with
   `get_merge_jobs` and resume it. If Zoho lists none, send the request
   again: a merge done at once deleted the child records, so Zoho rejects
   the repeat with INVALID_DATA, which is reported as UNKNOWN.

A try waits at most `try_seconds`, then raises `Retry`, so that arq's lock
on a job is short and a killed worker's merges resume soon. Outcomes are
stored with SET NX and appended to a list in the same Lua call, so each
merge is reported exactly once whatever the number of tries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from arq import Retry
from redis.exceptions import RedisError

from zoho_merge_async import (
    InternalError,
    InvalidDataError,
    MergeClient,
    MergeJobNotFoundError,
    MergeOutcomeUnknownError,
    MergeTimeoutError,
    RateLimitError,
    TransportError,
    WaitState,
    ZohoAPIError,
    ZohoError,
    resume_wait,
)

from .config import Settings
from .merge_store import MergeRequest, MergeStore

logger = logging.getLogger("arq_worker")

RETRYABLE = (RedisError, TransportError, RateLimitError, InternalError, MergeOutcomeUnknownError)
"""Errors after which arq runs the try again later, keeping what is stored."""

KEY_LIFETIME_EXTRA = 86_400.0
"""Seconds the Redis keys of a merge outlive its wait deadline."""


@dataclass(frozen=True, slots=True)
class Runtime:
    """Objects that one worker process shares between its jobs: the client and the settings."""

    client: MergeClient
    settings: Settings
    worker: str
    """Name of this worker in Redis and in outcomes: host name and process id."""


async def merge_and_report(ctx: dict[str, Any], module: str, master_record_id: str,
                           child_ids: list[str]) -> dict[str, Any]:
    """Merge the child records into the master record, wait for the merge, and report it.

    Returns the outcome, a JSON object with `outcome` MERGED, COMPLETED,
    FAILURE, REJECTED, TIMED_OUT, UNKNOWN or ERROR. Raises `arq.Retry` to
    continue in a later try after a try's time is up or a transient error.
    """
    runtime: Runtime = ctx["merge_runtime"]
    request = MergeRequest(module, str(master_record_id), tuple(map(str, child_ids)))
    store = MergeStore(ctx["redis"], request,
                       ttl=runtime.settings.wait_timeout + KEY_LIFETIME_EXTRA)
    attempt = _MergeTry(runtime, store, try_number=ctx["job_try"])
    try:
        return await attempt.run()
    except RETRYABLE as exc:
        delay = min(30.0, 2.0 ** min(ctx["job_try"], 5))
        logger.warning("merge %s: try %d failed, arq runs it again in %.0f s: %s",
                       request.key, ctx["job_try"], delay, exc)
        raise Retry(defer=delay) from exc


class _MergeTry:
    """Run one arq try of one merge request."""

    def __init__(self, runtime: Runtime, store: MergeStore, try_number: int) -> None:
        self.runtime = runtime
        self.store = store
        self.request = store.request
        self.try_number = try_number
        self.resumed = False
        self.ends_at = time.monotonic() + runtime.settings.try_seconds

    async def run(self) -> dict[str, Any]:
        reported = await self.store.outcome()
        if reported is not None:
            return reported
        await self.store.set_owner(self.runtime.worker)

        state = await self.store.state()
        self.resumed = state is not None
        if state is None:
            started = await self._start()
            if not isinstance(started, WaitState):
                return await self._report(started)
            state = started
        return await self._report(await self._wait(state))

    async def _start(self) -> WaitState | dict[str, Any]:
        """Send the merge request, or find the job of one an earlier try sent."""
        if await self.store.claim_start(self.runtime.worker):
            return await self._send(after_crash=False)

        self.resumed = True
        request = self.request
        jobs = await self.runtime.client.get_merge_jobs(request.module, request.master_record_id)
        if not jobs:
            logger.warning("merge %s: an earlier try may have sent the merge request, and Zoho "
                           "lists no job for the master record; sending it again", request.key)
            return await self._send(after_crash=True)
        # NOTE: this takes the newest job of the master record (job ids grow), which is
        # this merge's job unless something else merged into the same record meanwhile.
        job = max(jobs, key=lambda listed: int(listed.job_id))
        logger.info("merge %s: found job %s of an earlier try", request.key, job.job_id)
        return await self._save_new_state(job.job_id)

    async def _send(self, *, after_crash: bool) -> WaitState | dict[str, Any]:
        request = self.request
        try:
            result = await self.runtime.client.merge_records(
                request.module, request.master_record_id, list(request.child_ids))
        except (RateLimitError, TransportError):
            # Zoho did not run the request (a 429, or no connection was opened), so the
            # next try may send it as a first request.
            await self.store.clear_start()
            raise
        except InvalidDataError as exc:
            if after_crash:
                return self._outcome("UNKNOWN", detail=f"{exc.code} on sending the merge again: "
                                     "the earlier request may have merged the records")
            return self._outcome("REJECTED", detail=f"{exc.code}: {exc.message}")
        except ZohoAPIError as exc:
            return self._outcome("REJECTED", detail=f"{exc.code}: {exc.message}")

        if result.job_id is None:
            return self._outcome("MERGED")
        return await self._save_new_state(result.job_id)

    async def _save_new_state(self, job_id: str) -> WaitState:
        settings = self.runtime.settings
        state = WaitState.new(self.runtime.client, self.request.module,
                              self.request.master_record_id, job_id,
                              policy=settings.poll_policy, timeout=settings.wait_timeout)
        await self.store.save_state(state)
        return state

    async def _wait(self, state: WaitState) -> dict[str, Any]:
        """Resume the wait until the job ends or this try's time is up."""
        remaining = self.ends_at - time.monotonic()
        if remaining <= 0:
            raise self._hand_on()
        try:
            async with asyncio.timeout(remaining):
                job = await resume_wait(self.runtime.client, state, save=self.store.save_state)
        except MergeTimeoutError as exc:
            return self._outcome("TIMED_OUT", job_id=state.job_id, detail=str(exc))
        except MergeJobNotFoundError as exc:
            return self._outcome("UNKNOWN", job_id=state.job_id, detail=str(exc))
        except TimeoutError:
            raise self._hand_on() from None
        except RETRYABLE:
            raise
        except ZohoError as exc:
            return self._outcome("ERROR", job_id=state.job_id, detail=str(exc))
        return self._outcome(job.status.value, job_id=job.job_id)

    def _hand_on(self) -> Retry:
        logger.info("merge %s: try %d is over; the wait goes on in the next try",
                    self.request.key, self.try_number)
        return Retry(defer=0)

    def _outcome(self, outcome: str, *, job_id: str | None = None,
                 detail: str = "") -> dict[str, Any]:
        request = self.request
        return {"merge": request.key, "module": request.module,
                "master_record_id": request.master_record_id,
                "child_ids": list(request.child_ids), "outcome": outcome, "job_id": job_id,
                "detail": detail, "worker": self.runtime.worker, "resumed": self.resumed,
                "try": self.try_number, "reported_at": time.time()}

    async def _report(self, outcome: dict[str, Any]) -> dict[str, Any]:
        stored, is_new = await self.store.report(outcome)
        if is_new:
            logger.info("merge %s: %s %s", self.request.key, stored["outcome"],
                        stored["detail"])
        else:
            logger.info("merge %s: already reported as %s by %s", self.request.key,
                        stored["outcome"], stored["worker"])
        return stored
