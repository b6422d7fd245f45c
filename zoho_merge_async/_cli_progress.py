"""Progress of `zoho-merge wait` on stderr: a live line on a terminal, plain lines otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TextIO

from zoho_merge_async import MergeStatus, MergeStatusChange

_REDRAW_INTERVAL = 0.5  # seconds between redraws of the live line, for its elapsed time
# Filled cells of the live line's bar for each status: scheduled, running, finished.
_STAGES = {MergeStatus.SCHEDULED: 1, MergeStatus.RUNNING: 2, MergeStatus.COMPLETED: 3,
           MergeStatus.FAILURE: 3}
_BAR_WIDTH = 3


class WaitProgress:
    """Show the status changes of one wait on `out`.

    With `live`, one line is redrawn in place (for a terminal) with a bar of
    the stages SCHEDULED, RUNNING and finished, and the elapsed time. Without
    it, each change is printed on a line of its own. Pass the object as the
    wait's `on_status`, and run the wait inside `running()`.
    """

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self._out = out
        self._live = live
        self._started = time.monotonic()
        self._last: MergeStatusChange | None = None

    def __call__(self, change: MergeStatusChange) -> None:
        self._last = change
        if self._live:
            self._redraw()
            return
        status = change.status.value
        if change.previous is not None:
            status = f"{change.previous.value} -> {status}"
        self._out.write(f"{change.elapsed:6.1f} s  job {change.job_id}: {status} "
                        f"(poll {change.polls})\n")
        self._out.flush()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Redraw the live line while the block runs, and end it with a line break."""
        if not self._live:
            yield
            return
        ticker = asyncio.create_task(self._tick())
        try:
            yield
        finally:
            ticker.cancel()
            await asyncio.wait({ticker})
            if self._last is not None:
                self._redraw()
                self._out.write("\n")
                self._out.flush()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(_REDRAW_INTERVAL)
            self._redraw()

    def _redraw(self) -> None:
        change = self._last
        if change is None:
            return
        filled = _STAGES[change.status]
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        elapsed = time.monotonic() - self._started
        self._out.write(f"\r[{bar}] {change.status.value:<9} job {change.job_id}  "
                        f"{elapsed:.1f} s")
        self._out.flush()
