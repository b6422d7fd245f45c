"""Resuming a wait from a saved `WaitState`, and saving the state as the wait goes on."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

from ._errors import MergeTimeoutError
from ._models import MergeJob, MergeStatus
from ._progress import MergeStatusChange, StatusCallback
from ._state import WaitState, WallClock
from ._wait import wait_for_merge

if TYPE_CHECKING:
    from ._client import MergeClient

logger = logging.getLogger("zoho_merge_async")

SaveState: TypeAlias = Callable[[WaitState], Awaitable[None]]
"""Async function that stores a `WaitState`, such as in Redis or a database row."""


async def resume_wait(
    client: MergeClient,
    state: WaitState,
    *,
    save: SaveState | None = None,
    on_status: StatusCallback | None = None,
    wall_clock: WallClock = time.time,
) -> MergeJob:
    """Continue the wait that `state` describes until the job is COMPLETED or FAILURE.

    Polls as `wait_for_merge` does, with the state's policy, until the
    state's `deadline` on `wall_clock` (seconds since the Unix epoch). A state
    whose deadline has passed raises `MergeTimeoutError` at once, and a state
    that already contains a final status returns it at once, both without a
    request. A FAILURE is returned, not raised.

    `save` is awaited with the new state for the first status this call
    receives, for each change of status, and for the final status before
    this function returns. That is one write per distinct status, usually
    three or four per merge, and none for polls that bring no change. So
    after a crash the saved `polls` may miss the polls since the last
    change. Saves run while the wait goes on polling, and a state that
    arrives during a save replaces any older one that is not yet written.
    An exception from `save` ends the wait and propagates.

    `on_status` is called as in `wait_for_merge`, except that `previous` is
    the status the state had saved, so a resumed wait reports only changes,
    and that `polls` and `elapsed` count from the first wait.

    Raises `ValueError` if `state` is not a `WaitState` or has another API
    domain than `client`, and the errors of `wait_for_merge`. A
    `MergeTimeoutError` counts the polls and seconds of every resume.
    """
    state = _check_state(client, state)
    if state.last_status is not None and state.last_status.is_terminal:
        return MergeJob(state.job_id, state.last_status)
    now = wall_clock()
    if now >= state.deadline:
        raise _timeout_error(state, now)

    tracker = _Tracker(state, on_status, wall_clock)
    try:
        return await _wait_saving(client, tracker, save, state.deadline - now)
    except MergeTimeoutError as exc:
        latest = dataclasses.replace(tracker.latest, polls=state.polls + exc.polls)
        raise _timeout_error(latest, wall_clock()) from exc


def _check_state(client: MergeClient, state: object) -> WaitState:
    if not isinstance(state, WaitState):
        raise ValueError(f"invalid state {state!r}: pass a WaitState, such as one read with "
                         "WaitState.from_json")
    if state.api_domain != client.api_domain:
        raise ValueError(f"the wait state's api_domain {state.api_domain!r} differs from the "
                         f"client's {client.api_domain!r}: resume it with a MergeClient "
                         f"created with api_domain={state.api_domain!r}")
    return state


def _timeout_error(state: WaitState, now: float) -> MergeTimeoutError:
    return MergeTimeoutError(state.job_id, state.last_status, max(0.0, now - state.started_at),
                             state.polls)


class _Tracker:
    """The newest state of a resumed wait, and the states waiting to be saved."""

    def __init__(self, state: WaitState, on_status: StatusCallback | None,
                 wall_clock: WallClock) -> None:
        self.latest = state
        self.unsaved: WaitState | None = None
        self.changed = asyncio.Event()
        self._first_polls = state.polls
        self._reported: MergeStatus | None = state.last_status
        self._on_status = on_status
        self._wall_clock = wall_clock

    def record(self, change: MergeStatusChange) -> None:
        """Take a status from `wait_for_merge`, queue the new state and call `on_status`."""
        state = dataclasses.replace(self.latest, polls=self._first_polls + change.polls,
                                    last_status=change.status)
        self.latest = state
        self.unsaved = state
        self.changed.set()
        if self._on_status is not None and change.status is not self._reported:
            elapsed = max(0.0, self._wall_clock() - state.started_at)
            self._on_status(dataclasses.replace(change, previous=self._reported,
                                                polls=state.polls, elapsed=elapsed))
        self._reported = change.status

    async def flush(self, save: SaveState | None) -> None:
        """Await `save` with the newest unsaved state until none is left."""
        while self.unsaved is not None:
            state, self.unsaved = self.unsaved, None
            self.changed.clear()
            if save is not None:
                await save(state)
                logger.debug("%s record %s job %s: saved wait state after %d polls (%s)",
                             state.module, state.master_record_id, state.job_id, state.polls,
                             state.last_status.value if state.last_status else "no status")


async def _wait_saving(client: MergeClient, tracker: _Tracker, save: SaveState | None,
                       timeout: float) -> MergeJob:
    """Run `wait_for_merge` in a task, saving each new state while it polls."""
    state = tracker.latest
    wait = asyncio.ensure_future(wait_for_merge(
        client, state.module, state.master_record_id, state.job_id, policy=state.policy,
        timeout=timeout, on_status=tracker.record))
    try:
        while not wait.done():
            signal = asyncio.ensure_future(tracker.changed.wait())
            try:
                await asyncio.wait({wait, signal}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                signal.cancel()
            await tracker.flush(save)
        await tracker.flush(save)
        return wait.result()
    finally:
        if not wait.done():
            wait.cancel()
            await asyncio.wait({wait})
        if not wait.cancelled():
            # Marks an exception as retrieved when `save` or a cancellation ended the wait.
            wait.exception()
