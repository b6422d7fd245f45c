"""The state of a wait as plain JSON, so that another process can resume it.

A `WaitState` holds what a wait needs to go on after its process stopped:
the job, the API domain it lives at, the poll policy, the deadline as
wall-clock time, and how far the wait got. `to_json` writes it as a JSON
object such as::

    {"version": 1, "module": "Leads", "master_record_id": "2378988000000509963",
     "job_id": "2423488000000513988", "api_domain": "https://www.zohoapis.com",
     "policy": {"initial_delay": 2.0, "multiplier": 1.5, "max_delay": 30.0,
                "jitter": 0.2, "timeout": 600.0, "min_interval": 1.0},
     "started_at": 1733338000.0, "deadline": 1733338600.0,
     "polls": 4, "last_status": "RUNNING"}

Times are seconds since the Unix epoch (UTC). The text contains no token or
other secret, and it is read back with `json` only, never with pickle.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._models import MergeStatus
from ._policy import PollPolicy
from ._validation import check_api_domain, check_id, check_module
from ._wait import resolve_timeout

if TYPE_CHECKING:
    from ._client import MergeClient

WAIT_STATE_VERSION = 1
"""Version of the `WaitState` JSON format that this release writes and reads."""

WallClock = Callable[[], float]
"""Function returning the wall-clock time in seconds since the Unix epoch, like `time.time`."""

_POLICY_FIELDS = tuple(item.name for item in dataclasses.fields(PollPolicy))
_STATE_KEYS = frozenset({"version", "module", "master_record_id", "job_id", "api_domain",
                         "policy", "started_at", "deadline", "polls", "last_status"})


@dataclass(frozen=True, slots=True)
class WaitState:
    """Everything needed to resume a wait on a merge job, possibly in another process.

    `started_at` and `deadline` are wall-clock times in seconds since the Unix
    epoch (UTC), so a resumed wait keeps the deadline of the first one.
    `polls` counts the statuses received so far, across resumes, and
    `last_status` is the newest of them (None before the first). Create one
    with `WaitState.new`, store it with `to_json`, and continue the wait with
    `resume_wait`.

    Raises `ValueError` naming the field for an invalid value.
    """

    module: str
    master_record_id: str
    job_id: str
    api_domain: str
    started_at: float
    deadline: float
    policy: PollPolicy = field(default_factory=PollPolicy)
    polls: int = 0
    last_status: MergeStatus | None = None
    version: int = WAIT_STATE_VERSION

    def __post_init__(self) -> None:
        _check_version(self.version)
        check_module(self.module)
        object.__setattr__(self, "master_record_id",
                           check_id("master_record_id", self.master_record_id))
        object.__setattr__(self, "job_id", check_id("job_id", self.job_id))
        object.__setattr__(self, "api_domain", str(check_api_domain(self.api_domain)))
        if not isinstance(self.policy, PollPolicy):
            raise ValueError(f"invalid policy {self.policy!r}: pass a PollPolicy")
        for name in ("started_at", "deadline"):
            _check_epoch(name, getattr(self, name))
        if self.deadline <= self.started_at:
            raise ValueError(f"invalid deadline {self.deadline!r}: it must be later than "
                             f"started_at ({self.started_at!r})")
        if isinstance(self.polls, bool) or not isinstance(self.polls, int) or self.polls < 0:
            raise ValueError(f"invalid polls {self.polls!r}: give a whole number of at least 0")
        if self.last_status is not None and not isinstance(self.last_status, MergeStatus):
            raise ValueError(f"invalid last_status {self.last_status!r}: pass a MergeStatus "
                             "or None")

    @classmethod
    def new(
        cls,
        client: MergeClient,
        module: str,
        master_record_id: str | int,
        job_id: str | int,
        *,
        policy: PollPolicy | None = None,
        timeout: float | None = None,
        wall_clock: WallClock = time.time,
    ) -> WaitState:
        """Create the state of a wait that has not polled yet, on `client`'s API domain.

        `policy` defaults to the client's `poll` policy and `timeout` (seconds
        from now) to `policy.timeout`, as in `wait_for_merge`. Raises
        `ValueError` for an invalid argument.
        """
        policy = policy if policy is not None else client.poll_policy
        seconds = resolve_timeout(policy, timeout)
        now = wall_clock()
        return cls(module=module, master_record_id=str(master_record_id), job_id=str(job_id),
                   api_domain=client.api_domain, started_at=now, deadline=now + seconds,
                   policy=policy)

    @property
    def finished(self) -> bool:
        """True once the wait has seen COMPLETED or FAILURE."""
        return self.last_status is not None and self.last_status.is_terminal

    def to_dict(self) -> dict[str, Any]:
        """Return the state as a dict of JSON types, in the format `from_dict` reads."""
        return {
            "version": self.version,
            "module": self.module,
            "master_record_id": self.master_record_id,
            "job_id": self.job_id,
            "api_domain": self.api_domain,
            "policy": {name: getattr(self.policy, name) for name in _POLICY_FIELDS},
            "started_at": self.started_at,
            "deadline": self.deadline,
            "polls": self.polls,
            "last_status": None if self.last_status is None else self.last_status.value,
        }

    def to_json(self) -> str:
        """Return the state as one line of JSON."""
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WaitState:
        """Read a state from the dict that `to_dict` returns.

        Raises `ValueError` naming the field for a missing, unknown or
        ill-typed field, and for a `version` other than `WAIT_STATE_VERSION`.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"invalid wait state {data!r}: expected a JSON object")
        _check_version(data.get("version"))
        unknown = sorted(str(key) for key in data if key not in _STATE_KEYS)
        if unknown:
            raise ValueError(f"invalid wait state: unknown field {unknown[0]!r}")
        missing = sorted(_STATE_KEYS - set(data))
        if missing:
            raise ValueError(f"invalid wait state: missing field {missing[0]!r}")

        for name in ("module", "master_record_id", "job_id", "api_domain"):
            _require_type(name, data[name], str, "a str")
        for name in ("started_at", "deadline"):
            _require_number(name, data[name])
        return cls(module=data["module"], master_record_id=data["master_record_id"],
                   job_id=data["job_id"], api_domain=data["api_domain"],
                   started_at=float(data["started_at"]), deadline=float(data["deadline"]),
                   policy=_read_policy(data["policy"]), polls=data["polls"],
                   last_status=_read_status(data["last_status"]))

    @classmethod
    def from_json(cls, text: str | bytes) -> WaitState:
        """Read a state from the text that `to_json` returns.

        Raises `ValueError` for text that is not JSON, and as `from_dict` does.
        """
        if not isinstance(text, str | bytes):
            raise ValueError(f"invalid wait state {text!r}: pass the JSON text as str or bytes")
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"invalid wait state: the text is not JSON ({exc})") from exc
        return cls.from_dict(data)


def _check_version(version: object) -> None:
    if isinstance(version, bool) or version != WAIT_STATE_VERSION:
        raise ValueError(f"unsupported wait state version {version!r}: this release reads "
                         f"version {WAIT_STATE_VERSION} only; resume the wait with the release "
                         "that saved it")


def _check_epoch(name: str, value: object) -> None:
    if isinstance(value, bool) or not (
            isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"invalid {name} {value!r}: give seconds since the Unix epoch as a "
                         "finite number of at least 0")


def _require_type(name: str, value: object, expected: type, described: str) -> None:
    if not isinstance(value, expected):
        raise ValueError(f"invalid wait state: field {name!r} must be {described}, "
                         f"got {value!r}")


def _require_number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"invalid wait state: field {name!r} must be a number, got {value!r}")


def _read_policy(data: object) -> PollPolicy:
    if not isinstance(data, dict):
        raise ValueError(f"invalid wait state: field 'policy' must be an object, got {data!r}")
    keys = set(data)
    if keys != set(_POLICY_FIELDS):
        wrong = sorted(keys ^ set(_POLICY_FIELDS))[0]
        raise ValueError(f"invalid wait state: field 'policy.{wrong}' is "
                         f"{'unknown' if wrong in keys else 'missing'}")
    for name in _POLICY_FIELDS:
        _require_number(f"policy.{name}", data[name])
    try:
        return PollPolicy(**data)
    except ValueError as exc:
        raise ValueError(f"invalid wait state: field 'policy' is invalid: {exc}") from exc


def _read_status(value: object) -> MergeStatus | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in MergeStatus.__members__:
        names = ", ".join(MergeStatus.__members__)
        raise ValueError(f"invalid wait state: field 'last_status' must be null or one of "
                         f"{names}, got {value!r}")
    return MergeStatus[value]
