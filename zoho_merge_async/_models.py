"""Merge job status and the job record returned by every status call."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MergeStatus(enum.Enum):
    """State of a background merge job.

    Zoho's reference pages ("Get Records Merge Status") spell the values in
    upper case and call a failed job FAILURE. Zoho's OpenAPI file spells them
    `running`, `completed` and `failed`. `parse` accepts both.
    """

    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILURE = "FAILURE"

    @property
    def is_terminal(self) -> bool:
        """True for COMPLETED and FAILURE, the states after which the job never changes."""
        return self in (MergeStatus.COMPLETED, MergeStatus.FAILURE)

    @classmethod
    def parse(cls, raw: object) -> MergeStatus:
        """Convert Zoho's status text, in any letter case, to a member.

        Raises `ValueError` for any other text, so an unknown status is never
        mistaken for "still running".
        """
        # str.upper() turns some non-ASCII letters into ASCII ones (dotless "\u0131" into
        # "I"), so without the isascii() check "runn\u0131ng" would parse as RUNNING.
        status = _SPELLINGS.get(raw.upper()) if isinstance(raw, str) and raw.isascii() else None
        if status is None:
            known = ", ".join(sorted(_SPELLINGS))
            raise ValueError(f"unknown merge status {raw!r}; expected one of {known}")
        return status


_SPELLINGS: dict[str, MergeStatus] = {
    "SCHEDULED": MergeStatus.SCHEDULED,
    "RUNNING": MergeStatus.RUNNING,
    "COMPLETED": MergeStatus.COMPLETED,
    "FAILURE": MergeStatus.FAILURE,
    "FAILED": MergeStatus.FAILURE,
}


@dataclass(frozen=True, slots=True)
class MergeJob:
    """One merge job as Zoho reported it."""

    job_id: str
    status: MergeStatus
