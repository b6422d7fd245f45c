"""Status changes and poll counts that a wait reports while it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from ._models import MergeStatus


@dataclass(frozen=True, slots=True)
class MergeStatusChange:
    """A merge job's status as a wait first saw it, or a change from the status before.

    `previous` is None for the first status a wait receives. `polls` counts the
    statuses the wait has received so far, this one included, and `elapsed`
    is the number of seconds since the wait started.
    """

    module: str
    master_record_id: str
    job_id: str
    previous: MergeStatus | None
    status: MergeStatus
    polls: int
    elapsed: float


StatusCallback: TypeAlias = Callable[[MergeStatusChange], None]
"""Function called with each `MergeStatusChange` of a wait."""


@dataclass(frozen=True, slots=True)
class WaitStats:
    """Poll counts of one wait.

    `polls` is the number of statuses the wait received, which is the number
    of requests it would have sent on its own. `shared_polls` is how many of
    them came from a request that also served other waits of the same client,
    on the same job or on other jobs of the same master record. This wait did
    not pay a credit for those alone. `elapsed` is in seconds.
    """

    polls: int
    shared_polls: int
    elapsed: float
