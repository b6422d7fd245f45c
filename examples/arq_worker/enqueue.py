"""Enqueue merges for the arq workers, and optionally wait for their outcomes.

From the repository root, one MODULE/MASTER_ID/CHILD_ID[/CHILD_ID] argument per merge::

    REDIS_URL=redis://127.0.0.1:6379/0 python -m examples.arq_worker.enqueue \\
        Leads/2378988000000509963/2378988000000509964

or every merge in a JSON file written by `fake_zoho` (a list of objects with
`module`, `master_record_id` and `child_ids`), then wait up to 120 s::

    python -m examples.arq_worker.enqueue --from-file /tmp/fake/merges.json --wait 120

Each merge is enqueued under the arq job id `merge:MODULE:MASTER:CHILDREN`,
so enqueuing the same merge again while arq still keeps that job adds nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from .config import JOB_FUNCTION, QUEUE_NAME, dump_json, load_json, load_settings
from .merge_store import MergeRequest, MergeStore


def parse_merge(text: str) -> MergeRequest:
    """Parse MODULE/MASTER_ID/CHILD_ID[/CHILD_ID]; raise ValueError otherwise."""
    parts = text.split("/")
    if len(parts) not in (3, 4) or not all(parts):
        raise ValueError(f"invalid merge {text!r}: write MODULE/MASTER_ID/CHILD_ID or "
                         "MODULE/MASTER_ID/CHILD_ID/CHILD_ID")
    return MergeRequest(parts[0], parts[1], tuple(parts[2:]))


def read_merges(path: Path) -> list[MergeRequest]:
    """Read merges from a JSON list of objects with module, master_record_id and child_ids."""
    items: list[dict[str, Any]] = json.loads(path.read_text())
    return [MergeRequest(item["module"], str(item["master_record_id"]),
                         tuple(str(child) for child in item["child_ids"])) for item in items]


async def enqueue(pool: ArqRedis, merges: list[MergeRequest]) -> int:
    """Enqueue each merge once; return how many were new to arq."""
    added = 0
    for merge in merges:
        job = await pool.enqueue_job(JOB_FUNCTION, merge.module, merge.master_record_id,
                                     list(merge.child_ids), _job_id=f"merge:{merge.key}")
        added += job is not None
    return added


async def wait_for_outcomes(pool: ArqRedis, merges: list[MergeRequest],
                            timeout: float) -> list[dict[str, Any] | None]:
    """Poll Redis each second until every merge has an outcome or `timeout` seconds pass."""
    stores = [MergeStore(pool, merge, ttl=1) for merge in merges]
    deadline = time.monotonic() + timeout
    while True:
        outcomes = [await store.outcome() for store in stores]
        if all(outcomes) or time.monotonic() >= deadline:
            return outcomes
        await asyncio.sleep(1.0)


async def run(merges: list[MergeRequest], wait: float | None) -> int:
    """Enqueue `merges`, print the outcomes if `wait` is set, and return the exit status."""
    settings = load_settings()
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url),
                             job_serializer=dump_json, job_deserializer=load_json,
                             default_queue_name=QUEUE_NAME)
    try:
        added = await enqueue(pool, merges)
        print(f"enqueued {added} of {len(merges)} merges; the others were queued already")
        if wait is None:
            return 0
        outcomes = await wait_for_outcomes(pool, merges, wait)
    finally:
        await pool.aclose()

    for merge, outcome in zip(merges, outcomes, strict=True):
        text = "no outcome yet" if outcome is None else f"{outcome['outcome']} {outcome['detail']}"
        print(f"{merge.key}: {text}")
    return 0 if all(outcomes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Enqueue Zoho CRM merges for the arq workers.")
    parser.add_argument("merges", nargs="*", help="MODULE/MASTER_ID/CHILD_ID[/CHILD_ID]")
    parser.add_argument("--from-file", type=Path, help="JSON list of merges, as fake_zoho writes")
    parser.add_argument("--wait", type=float, default=None,
                        help="seconds to wait for the outcomes, printing them (default: no wait)")
    args = parser.parse_args(argv)
    try:
        merges = [parse_merge(text) for text in args.merges]
        if args.from_file is not None:
            merges += read_merges(args.from_file)
    except (ValueError, KeyError, OSError) as exc:
        parser.error(str(exc))
    if not merges:
        parser.error("no merges given: pass MODULE/MASTER_ID/CHILD_ID or --from-file")
    return asyncio.run(run(merges, args.wait))


if __name__ == "__main__":
    sys.exit(main())
