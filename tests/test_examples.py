"""Smoke tests that run each program in examples/ against a FakeZohoServer.

Each example is loaded from its file, because examples/ is not a package.
`main()` without arguments starts the example's own fake server. The other
tests pass the api_domain of a server started here.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest

from zoho_merge_async import MergeStatus, PollPolicy
from zoho_merge_async.testing import FakeZohoServer, StatusReply

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TOKEN = "1000.example5ecr3t.0123456789abcdef"
RECORD = "2378988000000509963"
FAST_POLL = PollPolicy(initial_delay=0.05, max_delay=0.2, timeout=10.0, min_interval=0.05)


def load_example(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import examples/<name>.py as the module `example_<name>`, for this test only."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import would, so that its classes can find their module.
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def server() -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=(TOKEN,)) as fake:
        yield fake


async def test_wait_one_offline(monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example("wait_one", monkeypatch)

    job = await example.main()

    assert job.status is MergeStatus.COMPLETED
    assert f"merge job {job.job_id} is COMPLETED" in capsys.readouterr().out


async def test_wait_one_given_server(server: FakeZohoServer,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    example = load_example("wait_one", monkeypatch)
    job_id = server.add_job("Deals", RECORD, ["SCHEDULED", "RUNNING", "FAILURE"])

    job = await example.main(server.api_domain, TOKEN, module="Deals",
                             master_record_id=RECORD, job_id=job_id, poll=FAST_POLL)

    assert job.job_id == job_id
    assert job.status is MergeStatus.FAILURE
    assert len(server.requests) == 3


async def test_wait_one_needs_token(monkeypatch: pytest.MonkeyPatch) -> None:
    example = load_example("wait_one", monkeypatch)

    with pytest.raises(ValueError, match="access_token is missing"):
        await example.main("http://127.0.0.1:1")


async def test_wait_many_offline(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example("wait_many", monkeypatch)

    counts = await example.main()

    assert counts == {"COMPLETED": 10, "FAILURE": 2, "MergeJobNotFoundError": 1}
    assert "13 waits" in capsys.readouterr().out


async def test_wait_many_given_server(server: FakeZohoServer,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    example = load_example("wait_many", monkeypatch)
    records = [str(int(RECORD) + offset) for offset in range(5)]
    targets = [
        example.MergeTarget("Contacts", record, server.add_job("Contacts", record,
                                                               ["RUNNING", "COMPLETED"]))
        for record in records
    ]

    counts = await example.main(server.api_domain, TOKEN, targets=targets, poll=FAST_POLL)

    assert counts == {"COMPLETED": 5}
    assert {request.job_id for request in server.requests} == {t.job_id for t in targets}
    assert len(server.requests) == 10


async def test_aiohttp_endpoint_offline(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example("aiohttp_endpoint", monkeypatch)

    reply = await example.main()

    assert reply["status"] == "COMPLETED"
    assert reply["job_id"].isdigit()
    assert "HTTP 200" in capsys.readouterr().out


async def test_aiohttp_endpoint_given_server(server: FakeZohoServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    example = load_example("aiohttp_endpoint", monkeypatch)
    job_id = server.add_job("Accounts", RECORD, ["RUNNING", "FAILURE"])

    reply = await example.main(server.api_domain, TOKEN, module="Accounts",
                               master_record_id=RECORD, job_id=job_id, poll=FAST_POLL)

    assert reply == {"job_id": job_id, "status": "FAILURE"}


@pytest.mark.parametrize(
    ("module", "job_id", "expected_error"),
    [
        ("Accounts", "2423488000000999999", "was not found"),
        ("Le/ads", "2423488000000999999", "invalid module 'Le/ads'"),
    ],
)
async def test_aiohttp_endpoint_error_reply(server: FakeZohoServer,
                                            monkeypatch: pytest.MonkeyPatch, module: str,
                                            job_id: str, expected_error: str) -> None:
    example = load_example("aiohttp_endpoint", monkeypatch)

    reply = await example.main(server.api_domain, TOKEN, module=module,
                               master_record_id=RECORD, job_id=job_id, poll=FAST_POLL)

    assert set(reply) == {"error"}
    assert expected_error in reply["error"]


async def test_queue_worker_offline(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example("queue_worker", monkeypatch)

    results = await example.main()

    assert len(results) == example.FAKE_JOB_COUNT
    assert sorted(results.values()) == ["COMPLETED"] * (example.FAKE_JOB_COUNT - 1) + ["FAILURE"]
    assert f"{example.FAKE_JOB_COUNT} jobs done with 3 workers" in capsys.readouterr().out


async def test_queue_worker_limits_concurrency(server: FakeZohoServer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    example = load_example("queue_worker", monkeypatch)
    items = []
    for offset in range(7):
        record = str(int(RECORD) + offset)
        # Delayed replies make requests overlap whenever workers poll at the same time.
        steps = [StatusReply("RUNNING", delay=0.05), StatusReply("COMPLETED", delay=0.05)]
        job_id = server.add_job("Leads", record, steps)
        items.append(example.WorkItem("Leads", record, job_id))
    items.append(example.WorkItem("Leads", RECORD, "2423488000000999999"))

    results = await example.main(server.api_domain, TOKEN, items=items, poll=FAST_POLL)

    assert len(results) == 8
    assert results["2423488000000999999"] == "MergeJobNotFoundError"
    assert [results[item.job_id] for item in items[:7]] == ["COMPLETED"] * 7
    # The workers start together, and each sends one request at a time.
    assert server.max_in_flight == example.WORKER_COUNT
