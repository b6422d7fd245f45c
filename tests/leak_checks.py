"""Checks that a test left no task, server connection or unraisable warning behind."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import Callable

from zoho_merge_async.testing import FakeZohoServer


async def settle(condition: Callable[[], bool], seconds: float) -> bool:
    """Return whether `condition` became true within `seconds` of real time."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def assert_no_leftovers(seconds: float) -> None:
    """Assert that only the current task remains and that garbage collection warns of nothing."""
    current = asyncio.current_task()
    assert await settle(lambda: asyncio.all_tasks() <= {current}, seconds)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [str(warning.message) for warning in caught] == []


async def assert_connections_closed(server: FakeZohoServer, seconds: float) -> None:
    """Assert that every connection to the running `server` closes within `seconds`."""
    runner = server._runner
    assert runner is not None
    closed = await settle(lambda: runner.server is None or not runner.server.connections,
                          seconds)
    assert closed
