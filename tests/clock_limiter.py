"""A `Limiter` for fake-clock tests whose slot moves the clock, as a long queue would."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from conftest import FakeClock


class ClockJumpLimiter:
    """Limiter whose slot moves the fake clock forward by `jump` seconds on entry."""

    def __init__(self, clock: FakeClock, jump: float) -> None:
        self._clock = clock
        self._jump = jump

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self._clock.now += self._jump
        yield

    def note_rate_limited(self, retry_after: float | None) -> None:
        """Ignore the 429; these tests send none."""
