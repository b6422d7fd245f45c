"""A fake clock on which several tasks can sleep at once, for tests with many pollers.

`conftest.FakeClock` adds every sleep to its time, which suits one sleeping
task. `VirtualClock` instead keeps a queue of sleepers: `run` lets the event
loop settle, then moves the time to the earliest wake-up and wakes every
sleeper due by then, until the awaited coroutine ends.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# Loop iterations that a mocked request takes at most before `run` moves the time.
_SETTLE_ROUNDS = 50


class VirtualClock:
    """Monotonic time that moves only when every task waits for it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._sleepers: dict[int, tuple[float, asyncio.Future[None]]] = {}
        self._ids = itertools.count()

    def time(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(float(delay))
        key = next(self._ids)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers[key] = (self.now + delay, future)
        try:
            await future
        finally:
            del self._sleepers[key]

    async def run(self, coroutine: Coroutine[Any, Any, T], *, limit: float = 3600.0) -> T:
        """Run `coroutine` to its end, moving the time as its tasks sleep; fail after `limit` s."""
        task = asyncio.ensure_future(coroutine)
        end = self.now + limit
        try:
            while not task.done():
                for _ in range(_SETTLE_ROUNDS):
                    await asyncio.sleep(0)
                if task.done():
                    break
                if not self._advance():
                    await asyncio.sleep(0.001)  # a real socket or timer is still pending
                if self.now > end:
                    raise AssertionError(f"still running after {limit} virtual seconds")
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
        return task.result()

    def _advance(self) -> bool:
        pending = [(wake, future) for wake, future in self._sleepers.values()
                   if not future.done()]
        if not pending:
            return False
        self.now = max(self.now, min(wake for wake, _ in pending))
        for wake, future in pending:
            if wake <= self.now:
                future.set_result(None)
        return True
