"""WaitState JSON and resume_wait: format checks, deadlines, saved states, progress."""

from __future__ import annotations

import asyncio
import json
import pickle
from typing import Any

import pytest
from aioresponses import aioresponses
from conftest import (
    API_DOMAIN,
    JOB_ID,
    MODULE,
    RECORD_ID,
    TOKEN,
    ClientFactory,
    FakeClock,
    jobs_body,
    merge_url,
    request_count,
)

from zoho_merge_async import (
    WAIT_STATE_VERSION,
    MergeJob,
    MergeStatus,
    MergeStatusChange,
    MergeTimeoutError,
    PollPolicy,
    WaitState,
    resume_wait,
)

STARTED = 1_733_338_000.0
POLICY = PollPolicy(initial_delay=2.0, multiplier=1.5, max_delay=30.0, jitter=0.2,
                    timeout=600.0)


class WallClock:
    """Wall clock in epoch seconds that follows the fake monotonic clock's sleeps."""

    def __init__(self, clock: FakeClock, start: float = STARTED) -> None:
        self._clock = clock
        self._offset = start - clock.now

    def __call__(self) -> float:
        return self._clock.now + self._offset


def make_state(**overrides: Any) -> WaitState:
    fields: dict[str, Any] = {
        "module": MODULE, "master_record_id": RECORD_ID, "job_id": JOB_ID,
        "api_domain": API_DOMAIN, "started_at": STARTED, "deadline": STARTED + 600.0,
        "policy": POLICY, "polls": 0, "last_status": None,
    }
    fields.update(overrides)
    return WaitState(**fields)


def add_statuses(mocked: aioresponses, *statuses: str) -> None:
    """Register one response per status, in order, and repeat the last one."""
    for status in statuses[:-1]:
        mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, status)))
    mocked.get(merge_url(JOB_ID), payload=jobs_body((JOB_ID, statuses[-1])), repeat=True)


class SavedStates:
    """A `save` callback that records every state it is given."""

    def __init__(self) -> None:
        self.states: list[WaitState] = []

    async def __call__(self, state: WaitState) -> None:
        self.states.append(state)


# JSON format


def test_json_round_trip() -> None:
    state = make_state(polls=4, last_status=MergeStatus.RUNNING)

    assert WaitState.from_json(state.to_json()) == state


def test_dict_round_trip() -> None:
    state = make_state(polls=2, last_status=MergeStatus.SCHEDULED)

    assert WaitState.from_dict(state.to_dict()) == state


def test_json_is_plain_object() -> None:
    data = json.loads(make_state(last_status=MergeStatus.FAILURE).to_json())

    assert data["version"] == WAIT_STATE_VERSION
    assert data["last_status"] == "FAILURE"
    assert data["policy"]["initial_delay"] == 2.0
    assert data["deadline"] == STARTED + 600.0


def test_json_reads_bytes() -> None:
    state = make_state()

    assert WaitState.from_json(state.to_json().encode()) == state


def test_json_holds_no_token(make_client: ClientFactory) -> None:
    state = WaitState.new(make_client(), MODULE, RECORD_ID, JOB_ID)

    assert TOKEN not in state.to_json()
    assert TOKEN not in repr(state)


@pytest.mark.parametrize("version", [0, 2, "1", None, True])
def test_unknown_version_rejected(version: object) -> None:
    data = make_state().to_dict()
    data["version"] = version

    with pytest.raises(ValueError, match="unsupported wait state version") as info:
        WaitState.from_dict(data)

    assert repr(version) in str(info.value)
    assert f"version {WAIT_STATE_VERSION} only" in str(info.value)


def test_constructor_rejects_version() -> None:
    with pytest.raises(ValueError, match="unsupported wait state version 2"):
        make_state(version=2)


@pytest.mark.parametrize("name", ["module", "job_id", "deadline", "policy", "polls",
                                  "last_status"])
def test_missing_field_named(name: str) -> None:
    data = make_state().to_dict()
    del data[name]

    with pytest.raises(ValueError, match=f"missing field '{name}'"):
        WaitState.from_dict(data)


def test_unknown_field_named() -> None:
    data = make_state().to_dict()
    data["access_token"] = "x"

    with pytest.raises(ValueError, match="unknown field 'access_token'"):
        WaitState.from_dict(data)


@pytest.mark.parametrize(("name", "value", "named"), [
    ("module", 7, "module"),
    ("module", "Leads/1", "module"),
    ("master_record_id", 2378988000000509963, "master_record_id"),
    ("job_id", "12ab", "job_id"),
    ("api_domain", "ftp://example.com", "api_domain"),
    ("api_domain", "http://crm.example.com", "api_domain"),
    ("deadline", "soon", "deadline"),
    ("deadline", STARTED - 1, "deadline"),
    ("started_at", True, "started_at"),
    ("polls", "3", "polls"),
    ("polls", -1, "polls"),
    ("polls", 2.5, "polls"),
    ("last_status", "running", "last_status"),
    ("last_status", "DONE", "last_status"),
    ("policy", [], "policy"),
])
def test_ill_typed_field_named(name: str, value: object, named: str) -> None:
    data = make_state().to_dict()
    data[name] = value

    with pytest.raises(ValueError, match=named):
        WaitState.from_dict(data)


@pytest.mark.parametrize(("change", "named"), [
    ({"initial_delay": "2"}, "policy.initial_delay"),
    ({"jitter": 1.5}, "PollPolicy.jitter"),
    ({"extra": 1}, "policy.extra"),
])
def test_bad_policy_named(change: dict[str, object], named: str) -> None:
    data = make_state().to_dict()
    data["policy"] = {**data["policy"], **change}

    with pytest.raises(ValueError, match=named):
        WaitState.from_dict(data)


def test_missing_policy_field_named() -> None:
    data = make_state().to_dict()
    del data["policy"]["timeout"]

    with pytest.raises(ValueError, match=r"'policy\.timeout' is missing"):
        WaitState.from_dict(data)


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", "null", b"\xff\xfe"])
def test_not_an_object_rejected(text: str | bytes) -> None:
    with pytest.raises(ValueError, match="invalid wait state"):
        WaitState.from_json(text)


def test_non_finite_deadline_rejected() -> None:
    with pytest.raises(ValueError, match="invalid deadline inf"):
        make_state(deadline=float("inf"))


def test_pickle_not_needed() -> None:
    # The state is JSON-only by design, but it stays an ordinary picklable value.
    state = make_state(last_status=MergeStatus.RUNNING)

    assert pickle.loads(pickle.dumps(state)) == state


def test_new_uses_client_domain(make_client: ClientFactory) -> None:
    client = make_client(api_domain="https://www.zohoapis.eu")

    state = WaitState.new(client, MODULE, int(RECORD_ID), int(JOB_ID), timeout=90,
                          wall_clock=lambda: STARTED)

    assert state.api_domain == "https://www.zohoapis.eu"
    assert state.master_record_id == RECORD_ID
    assert state.deadline == STARTED + 90
    assert state.policy == client.poll_policy
    assert state.polls == 0


def test_new_rejects_bad_timeout(make_client: ClientFactory) -> None:
    with pytest.raises(ValueError, match="invalid timeout -1"):
        WaitState.new(make_client(), MODULE, RECORD_ID, JOB_ID, timeout=-1)


# resume_wait


async def test_resume_after_deadline_times_out(mocked: aioresponses,
                                               make_client: ClientFactory) -> None:
    state = make_state(polls=7, last_status=MergeStatus.RUNNING)

    with pytest.raises(MergeTimeoutError) as info:
        await resume_wait(make_client(), state, wall_clock=lambda: state.deadline + 5)

    assert info.value.polls == 7
    assert info.value.last_status is MergeStatus.RUNNING
    assert info.value.elapsed == 605.0
    assert request_count(mocked) == 0


async def test_resume_finished_returns_at_once(mocked: aioresponses,
                                               make_client: ClientFactory) -> None:
    state = make_state(polls=3, last_status=MergeStatus.FAILURE)

    job = await resume_wait(make_client(), state, wall_clock=lambda: state.deadline + 5)

    assert job == MergeJob(JOB_ID, MergeStatus.FAILURE)
    assert request_count(mocked) == 0


async def test_resume_continues_polls(mocked: aioresponses, make_client: ClientFactory,
                                      clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING", "RUNNING", "COMPLETED")
    saved = SavedStates()
    state = make_state(polls=5, last_status=MergeStatus.RUNNING)

    job = await resume_wait(make_client(), state, save=saved, wall_clock=WallClock(clock))

    assert job == MergeJob(JOB_ID, MergeStatus.COMPLETED)
    assert [saved_state.polls for saved_state in saved.states] == [6, 8]
    assert saved.states[-1].last_status is MergeStatus.COMPLETED
    assert request_count(mocked) == 3


async def test_save_receives_each_change(mocked: aioresponses, make_client: ClientFactory,
                                         clock: FakeClock) -> None:
    add_statuses(mocked, "SCHEDULED", "RUNNING", "RUNNING", "FAILURE")
    saved = SavedStates()

    job = await resume_wait(make_client(), make_state(), save=saved,
                            wall_clock=WallClock(clock))

    assert job.status is MergeStatus.FAILURE
    assert [state.last_status for state in saved.states] == [
        MergeStatus.SCHEDULED, MergeStatus.RUNNING, MergeStatus.FAILURE]
    assert [state.polls for state in saved.states] == [1, 2, 4]
    assert {state.deadline for state in saved.states} == {STARTED + 600.0}


async def test_saved_state_resumes(mocked: aioresponses, make_client: ClientFactory,
                                   clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING", "COMPLETED")
    saved = SavedStates()
    first = make_state()

    await resume_wait(make_client(), first, save=saved, wall_clock=WallClock(clock))
    text = saved.states[-1].to_json()

    job = await resume_wait(make_client(), WaitState.from_json(text),
                            wall_clock=WallClock(clock))
    assert job.status is MergeStatus.COMPLETED
    assert request_count(mocked) == 2


async def test_slow_save_keeps_newest(mocked: aioresponses, make_client: ClientFactory,
                                      clock: FakeClock) -> None:
    add_statuses(mocked, "SCHEDULED", "RUNNING", "COMPLETED")
    saved: list[WaitState] = []
    completed = asyncio.Event()

    async def slow_save(state: WaitState) -> None:
        if not saved:
            await completed.wait()
        saved.append(state)

    def note_status(change: MergeStatusChange) -> None:
        if change.status is MergeStatus.COMPLETED:
            completed.set()

    await resume_wait(make_client(), make_state(), save=slow_save, on_status=note_status,
                      wall_clock=WallClock(clock))

    assert [state.last_status for state in saved] == [MergeStatus.SCHEDULED,
                                                      MergeStatus.COMPLETED]


async def test_save_error_ends_wait(mocked: aioresponses, make_client: ClientFactory,
                                    clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING", "RUNNING", "COMPLETED")
    # The poller blocks in its first sleep, so only the failing save can end the wait.
    clock.hold_sleeps()

    async def failing_save(state: WaitState) -> None:
        raise OSError("store unavailable")

    with pytest.raises(OSError, match="store unavailable"):
        await asyncio.wait_for(resume_wait(make_client(), make_state(), save=failing_save,
                                           wall_clock=WallClock(clock)), timeout=5)

    assert request_count(mocked) == 1


async def test_on_status_skips_saved_status(mocked: aioresponses, make_client: ClientFactory,
                                            clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING", "RUNNING", "COMPLETED")
    changes: list[MergeStatusChange] = []
    state = make_state(polls=4, last_status=MergeStatus.RUNNING)

    await resume_wait(make_client(), state, on_status=changes.append,
                      wall_clock=WallClock(clock, start=STARTED + 100))

    assert len(changes) == 1
    assert changes[0].previous is MergeStatus.RUNNING
    assert changes[0].status is MergeStatus.COMPLETED
    assert changes[0].polls == 7
    assert changes[0].elapsed == pytest.approx(100 + 2.0 + 3.0)


async def test_timeout_counts_every_resume(mocked: aioresponses, make_client: ClientFactory,
                                           clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING")
    wall_clock = WallClock(clock, start=STARTED + 590)
    state = make_state(polls=10, last_status=MergeStatus.RUNNING)

    with pytest.raises(MergeTimeoutError) as info:
        await resume_wait(make_client(), state, wall_clock=wall_clock)

    assert info.value.polls == 10 + request_count(mocked)
    assert info.value.elapsed == pytest.approx(600.0)
    assert wall_clock() <= state.deadline


async def test_domain_mismatch_rejected(mocked: aioresponses,
                                        make_client: ClientFactory) -> None:
    state = make_state(api_domain="https://www.zohoapis.eu")

    with pytest.raises(ValueError, match=r"api_domain='https://www\.zohoapis\.eu'"):
        await resume_wait(make_client(), state)

    assert request_count(mocked) == 0


async def test_non_state_rejected(make_client: ClientFactory) -> None:
    with pytest.raises(ValueError, match="pass a WaitState"):
        await resume_wait(make_client(), make_state().to_json())  # type: ignore[arg-type]


async def test_cancel_stops_resume(mocked: aioresponses, make_client: ClientFactory,
                                   clock: FakeClock) -> None:
    add_statuses(mocked, "RUNNING")
    clock.hold_sleeps()
    task = asyncio.create_task(resume_wait(make_client(), make_state(),
                                           wall_clock=WallClock(clock)))
    await clock.sleeping.wait()

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert request_count(mocked) == 1
