"""Counts of what a `MergeClient` sent, as `MergeClient.stats` returns them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counts of what a client sent since it was created."""

    requests_sent: int
    """HTTP requests sent, each costing one Zoho API credit (retries included)."""
    retries: int
    """Requests sent again after INTERNAL_ERROR."""
    polls_sent: int = 0
    """Polls started by waits, each serving every wait on its master record.

    A poll that was cancelled or timed out while queued for the concurrency
    cap counts too, although it sent no request.
    """
    credits_saved: int = 0
    """Statuses that waits received from a request another wait also received."""
    rate_limited: int = 0
    """429 TOO_MANY_REQUESTS responses received."""
