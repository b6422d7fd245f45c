"""The Redis keys of one merge request: its start marker, wait state, owner and outcome.

Keys, with `{merge}` as `Module:master_id:child_id[+child_id]`:

- `zoho-merge:started:{merge}`: set (NX) just before the merge request is
  sent, with the worker's name and the time. A try that finds it but no
  wait state concludes that an earlier try may have sent the request.
- `zoho-merge:state:{merge}`: the `WaitState` JSON of a scheduled merge,
  written as soon as Zoho returns the job id and after each status change.
- `zoho-merge:owner:{merge}`: the worker running the current try.
- `zoho-merge:outcome:{merge}`: the final outcome, set once (NX). The same
  Lua call appends it to the list `zoho-merge:outcomes`, so each merge is
  reported there exactly once.

Every key expires `ttl` seconds after its last write.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from zoho_merge_async import WaitState

from .config import KEY_PREFIX

OUTCOMES_KEY = f"{KEY_PREFIX}:outcomes"
"""Redis list of every reported outcome as JSON, in the order they were reported."""

# Sets the outcome only if none is stored, and then appends it to the list, atomically.
# Returns {1, the new outcome}, or {0, the outcome an earlier try reported}.
_REPORT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return {1, ARGV[1]}
end
return {0, redis.call('GET', KEYS[1])}
"""


@dataclass(frozen=True, slots=True)
class MergeRequest:
    """One merge to run: the module, the master record and one or two child records."""

    module: str
    master_record_id: str
    child_ids: tuple[str, ...]

    @property
    def key(self) -> str:
        """Name of the merge inside Redis keys, such as `Leads:111:222+333`."""
        return f"{self.module}:{self.master_record_id}:{'+'.join(self.child_ids)}"


class MergeStore:
    """Reads and writes the Redis keys of one merge request."""

    def __init__(self, redis: Redis, request: MergeRequest, ttl: float) -> None:
        self.request = request
        self._redis = redis
        self._ttl = max(1, round(ttl))
        key = request.key
        self.started_key = f"{KEY_PREFIX}:started:{key}"
        self.state_key = f"{KEY_PREFIX}:state:{key}"
        self.owner_key = f"{KEY_PREFIX}:owner:{key}"
        self.outcome_key = f"{KEY_PREFIX}:outcome:{key}"
        self._report_script = redis.register_script(_REPORT)

    async def outcome(self) -> dict[str, Any] | None:
        """Return the outcome reported for this merge, or None."""
        raw = await self._redis.get(self.outcome_key)
        return None if raw is None else _decode(raw)

    async def state(self) -> WaitState | None:
        """Return the saved wait state, or None; raise ValueError for a corrupt one."""
        raw = await self._redis.get(self.state_key)
        return None if raw is None else WaitState.from_json(raw)

    async def save_state(self, state: WaitState) -> None:
        """Store `state`, replacing the one saved before."""
        await self._redis.set(self.state_key, state.to_json(), ex=self._ttl)

    async def claim_start(self, worker: str) -> bool:
        """Mark the merge request as about to be sent; False if an earlier try marked it."""
        marker = json.dumps({"worker": worker, "at": time.time()})
        return bool(await self._redis.set(self.started_key, marker, nx=True, ex=self._ttl))

    async def clear_start(self) -> None:
        """Remove the start marker, after a merge request that Zoho did not run."""
        await self._redis.delete(self.started_key)

    async def set_owner(self, worker: str) -> None:
        """Record that `worker` runs the current try."""
        await self._redis.set(self.owner_key, worker, ex=self._ttl)

    async def report(self, outcome: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Store `outcome` unless one is stored; return the stored one and whether it is new."""
        text = json.dumps(outcome, sort_keys=True)
        is_new, stored = await self._report_script(keys=[self.outcome_key, OUTCOMES_KEY],
                                                   args=[text, self._ttl])
        return _decode(stored), is_new == 1


def _decode(raw: bytes | str) -> dict[str, Any]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError(f"invalid outcome {value!r} in Redis: expected a JSON object")
    return value
