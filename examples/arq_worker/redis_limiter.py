"""A `Limiter` that shares one concurrency budget between processes through Redis.

Zoho limits the API calls one app may have in flight at once in one
organisation (Standard edition: 10) and returns 429 beyond that. Worker
processes on several machines each have their own `MergeClient`, so each
client's own cap cannot keep their sum under the limit. `RedisLimiter`
keeps the slots in Redis instead:

- `{prefix}:slots` is a sorted set with one member per request in flight,
  scored with the Redis server time (ms) at which its lease ends. A Lua
  script drops expired leases and adds a member only while fewer than
  `budget` remain, in one atomic step. A process killed while it holds
  slots loses them when their leases end.
- `{prefix}:pause_until` contains a Redis server time (ms) until which no slot
  is given, set after a 429 from Retry-After, so every process slows down.

Times come from the Redis server's clock, so the machines' clocks may differ.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from zoho_merge_async import TransportError

logger = logging.getLogger("arq_worker")

# Returns 0 when the slot ARGV[3] was taken, -1 when all `budget` slots are taken,
# or the milliseconds until a pause after a 429 ends.
_ACQUIRE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local pause_until = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause_until > now_ms then
  return pause_until - now_ms
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
return -1
"""

# Moves the shared pause to ARGV[1] ms from now, unless it already ends later.
_PAUSE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local until_ms = now_ms + tonumber(ARGV[1])
if until_ms > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], until_ms, 'PX', ARGV[1])
end
return until_ms
"""

# Keeps the slot ARGV[1] for ARGV[2] more ms, if it is still taken.
_LINGER = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return redis.call('ZADD', KEYS[1], 'XX', now_ms + tonumber(ARGV[2]), ARGV[1])
"""

DEFAULT_PAUSE = 1.0
"""Seconds every process pauses after a 429 without Retry-After."""

DEFAULT_LINGER = 2.0
"""Seconds a slot stays taken after its request failed or was cancelled.

NOTE: Zoho does not document whether a request counts against the limit
after the client gave up on it. This value assumes it may, for up to 2 s.
"""


class RedisLimiter:
    """Admit at most `budget` requests at once across every process that uses the same keys.

    `lease` (seconds) must exceed the longest request, because a slot held
    longer is given to another request. A request that ends with an error
    or a cancellation keeps its slot `linger` more seconds, because the
    server may still be working on it. A request waits at most `max_wait`
    seconds for a slot, then raises `TransportError` without being sent.
    While it waits it runs the Lua script again after a random delay of 10
    to 200 ms, growing with each attempt. A local semaphore lets at most
    `budget` requests of one process run the script at once.

    After a 429, `note_rate_limited` pauses every process for the response's
    Retry-After, or `DEFAULT_PAUSE` seconds without one.
    """

    def __init__(self, redis: Redis, *, budget: int, lease: float, max_wait: float,
                 linger: float = DEFAULT_LINGER, key_prefix: str = "zoho-merge:limiter",
                 random_source: Callable[[], float] = random.random) -> None:
        if budget < 1:
            raise ValueError(f"invalid budget {budget!r}: give a whole number of at least 1")
        if not lease > 0 or not max_wait > 0:
            raise ValueError(f"invalid lease {lease!r} or max_wait {max_wait!r}: give positive "
                             "numbers of seconds")
        self.budget = budget
        self.slots_key = f"{key_prefix}:slots"
        self.pause_key = f"{key_prefix}:pause_until"
        self._lease_ms = max(1, round(lease * 1000))
        self._linger_ms = max(1, round(linger * 1000))
        self._max_wait = max_wait
        self._random = random_source
        self._local = asyncio.Semaphore(budget)
        self._acquire_script = redis.register_script(_ACQUIRE)
        self._pause_script = redis.register_script(_PAUSE)
        self._linger_script = redis.register_script(_LINGER)
        self._redis = redis
        self._background: set[asyncio.Task[None]] = set()

    def slot(self) -> AbstractAsyncContextManager[None]:
        """Return a context manager that holds one shared slot while its block runs."""
        return _RedisSlot(self)

    def note_rate_limited(self, retry_after: float | None) -> None:
        """Pause every process for `retry_after` seconds, or `DEFAULT_PAUSE` without it."""
        seconds = DEFAULT_PAUSE if retry_after is None else max(0.0, retry_after)
        logger.warning("Zoho returned 429 TOO_MANY_REQUESTS; pausing all workers for %.1f s",
                       seconds)
        self._spawn(self._pause_script(keys=[self.pause_key],
                                       args=[max(1, round(seconds * 1000))]))

    async def aclose(self) -> None:
        """Wait for the slot releases and pauses still being written to Redis."""
        if self._background:
            await asyncio.wait(set(self._background))

    async def _acquire(self) -> str:
        """Take a local and a shared slot and return the shared slot's member name.

        Raises `TransportError` if both are not taken within `max_wait`.
        """
        token = uuid.uuid4().hex
        local_taken = False
        try:
            async with asyncio.timeout(self._max_wait):
                await self._local.acquire()
                local_taken = True
                await self._take(token)
        except BaseException as exc:
            if local_taken:
                self._local.release()
                # The script may have added the member before the timeout or a cancellation.
                self._spawn(self._release(token))
            if isinstance(exc, TimeoutError):
                raise TransportError(f"no Zoho request slot became free within "
                                     f"{self._max_wait:g} s (budget {self.budget} shared "
                                     "through Redis)") from exc
            raise
        return token

    async def _take(self, token: str) -> None:
        attempt = 0
        while True:
            answer = int(await self._acquire_script(
                keys=[self.slots_key, self.pause_key], args=[self.budget, self._lease_ms, token]))
            if answer == 0:
                return
            if answer > 0:
                delay = answer / 1000 + 0.05 * self._random()
            else:
                delay = min(0.2, 0.01 * 2**attempt) * (0.5 + self._random() / 2)
                attempt += 1
            await asyncio.sleep(delay)

    async def _release(self, token: str) -> None:
        await self._redis.zrem(self.slots_key, token)

    async def _linger(self, token: str) -> None:
        await self._linger_script(keys=[self.slots_key], args=[token, self._linger_ms])

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(_log_redis_errors(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


async def _log_redis_errors(work: Coroutine[Any, Any, Any]) -> None:
    try:
        await work
    except RedisError as exc:
        logger.warning("writing the shared slots to Redis failed, so a slot stays taken until "
                       "its lease ends: %s", exc)


class _RedisSlot:
    """One shared slot of a `RedisLimiter`, held while the `async with` block runs."""

    def __init__(self, limiter: RedisLimiter) -> None:
        self._limiter = limiter
        self._token = ""

    async def __aenter__(self) -> None:
        self._token = await self._limiter._acquire()

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        limiter = self._limiter
        limiter._local.release()
        ending = limiter._release if exc_type is None else limiter._linger
        # A cancelled request still frees its slot: the release goes on in the background.
        await asyncio.shield(limiter._spawn(ending(self._token)))
