"""Tests for the `zoho-merge` command against a FakeZohoServer on 127.0.0.1.

The tests await `_cli.run`, which `main` wraps in `asyncio.run`, so the fake
server runs in the test's own event loop.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from zoho_merge_async import _cli, _demo
from zoho_merge_async.testing import FakeZohoServer, ZohoErrorReply

TOKEN = "1000.cli5ecr3t.0123456789abcdef"
MODULE = "Leads"
RECORD = "2378988000000509963"
OTHER_RECORD = "2378988000000509970"
UNKNOWN_JOB = "2423488000000999999"
SUMMARY_ROW = re.compile(r"^  (\S+(?: \S+)*) {2,}(\S+)", re.MULTILINE)


@pytest.fixture
async def server() -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=(TOKEN,)) as fake:
        yield fake


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOHO_ACCESS_TOKEN", TOKEN)
    monkeypatch.delenv("ZOHO_API_DOMAIN", raising=False)


def read_output(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Return (stdout, stderr) so far, after checking that neither shows the token."""
    out, err = capsys.readouterr()
    assert TOKEN not in out
    assert TOKEN not in err
    return out, err


def summary_rows(out: str) -> dict[str, str]:
    """Map each row name of the demo's summary table to its value."""
    table = out[out.index("\nsummary\n"):]
    return dict(SUMMARY_ROW.findall(table))


async def run_against(server: FakeZohoServer, *argv: str) -> int:
    """Run a `status` or `wait` command line with --api-domain set to the fake server."""
    command, *rest = argv
    return await _cli.run([command, "--api-domain", server.api_domain, *rest])


@pytest.mark.usefixtures("token_env")
async def test_status_prints_one_job(server: FakeZohoServer,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    job_id = server.add_job(MODULE, RECORD, ["RUNNING"])

    code = await run_against(server, "status", MODULE, RECORD, "--job-id", job_id)

    out, err = read_output(capsys)
    assert code == 0
    assert out == f"{job_id} RUNNING\n"
    assert err == ""
    assert server.requests[0].job_id == job_id
    assert server.requests[0].headers["authorization"] == f"Zoho-oauthtoken {TOKEN}"


@pytest.mark.usefixtures("token_env")
async def test_status_lists_all_jobs(server: FakeZohoServer,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    first = server.add_job(MODULE, RECORD, ["COMPLETED"])
    second = server.add_job(MODULE, RECORD, ["FAILURE"])
    server.add_job(MODULE, OTHER_RECORD, ["RUNNING"])

    code = await run_against(server, "status", MODULE, RECORD)

    out, _ = read_output(capsys)
    assert code == 0
    assert out.splitlines() == [f"{first} COMPLETED", f"{second} FAILURE"]
    assert server.requests[0].job_id is None


@pytest.mark.usefixtures("token_env")
async def test_status_json(server: FakeZohoServer, capsys: pytest.CaptureFixture[str]) -> None:
    first = server.add_job(MODULE, RECORD, ["SCHEDULED"])
    second = server.add_job(MODULE, RECORD, ["running"])

    code = await run_against(server, "status", MODULE, RECORD, "--json")

    out, _ = read_output(capsys)
    assert code == 0
    assert json.loads(out) == [
        {"job_id": first, "status": "SCHEDULED"},
        {"job_id": second, "status": "RUNNING"},
    ]


@pytest.mark.usefixtures("token_env")
async def test_status_record_without_jobs(server: FakeZohoServer,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_against(server, "status", MODULE, RECORD, "--json")

    out, err = read_output(capsys)
    assert code == 0
    assert json.loads(out) == []
    assert f"no merge jobs found for {MODULE} record {RECORD}" in err


@pytest.mark.usefixtures("token_env")
async def test_status_unknown_job_exits_4(server: FakeZohoServer,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_against(server, "status", MODULE, RECORD, "--job-id", UNKNOWN_JOB)

    out, err = read_output(capsys)
    assert code == 4
    assert out == ""
    assert err.startswith(f"error: merge job {UNKNOWN_JOB} was not found")


@pytest.mark.usefixtures("token_env")
async def test_status_api_version_in_path(server: FakeZohoServer,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    job_id = server.add_job(MODULE, RECORD, ["COMPLETED"])

    code = await run_against(server, "status", MODULE, RECORD, "--job-id", job_id,
                             "--api-version", "v8")

    read_output(capsys)
    assert code == 0
    assert server.requests[0].path == f"/crm/v8/{MODULE}/{RECORD}/actions/merge"


async def test_api_domain_from_environment(server: FakeZohoServer,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ZOHO_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("ZOHO_API_DOMAIN", server.api_domain)
    job_id = server.add_job(MODULE, RECORD, ["COMPLETED"])

    code = await _cli.run(["status", MODULE, RECORD, "--job-id", job_id])

    out, _ = read_output(capsys)
    assert code == 0
    assert out == f"{job_id} COMPLETED\n"
    assert len(server.requests) == 1


async def test_token_from_named_variable(server: FakeZohoServer,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ZOHO_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("CRM_TOKEN", TOKEN)
    job_id = server.add_job(MODULE, RECORD, ["COMPLETED"])

    code = await run_against(server, "status", MODULE, RECORD, "--job-id", job_id,
                             "--access-token-env", "CRM_TOKEN")

    read_output(capsys)
    assert code == 0
    assert server.requests[0].headers["authorization"] == f"Zoho-oauthtoken {TOKEN}"


@pytest.mark.usefixtures("token_env")
async def test_wait_completed_exits_0(server: FakeZohoServer,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    job_id = server.add_job(MODULE, RECORD, ["SCHEDULED", "RUNNING", "COMPLETED"])

    code = await run_against(server, "wait", MODULE, RECORD, job_id, "--poll-interval", "0.05")

    out, err = read_output(capsys)
    assert code == 0
    assert out == f"{job_id} COMPLETED\n"
    # stderr is not a terminal here, so the progress is one plain line per status.
    assert [re.sub(r"^ *[0-9.]+ s  ", "", line) for line in err.splitlines()] == [
        f"job {job_id}: SCHEDULED (poll 1)",
        f"job {job_id}: SCHEDULED -> RUNNING (poll 2)",
        f"job {job_id}: RUNNING -> COMPLETED (poll 3)",
    ]
    assert len(server.requests) == 3


@pytest.mark.usefixtures("token_env")
async def test_wait_without_job_id(server: FakeZohoServer,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    job_id = server.add_job(MODULE, RECORD, ["RUNNING", "COMPLETED"])

    code = await run_against(server, "wait", MODULE, RECORD, "--poll-interval", "0.05",
                             "--json")

    out, _ = read_output(capsys)
    assert code == 0
    assert json.loads(out) == {"job_id": job_id, "status": "COMPLETED"}


@pytest.mark.usefixtures("token_env")
async def test_wait_failure_exits_1(server: FakeZohoServer,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    job_id = server.add_job(MODULE, RECORD, ["RUNNING", "FAILURE"])

    code = await run_against(server, "wait", MODULE, RECORD, job_id, "--poll-interval", "0.05")

    out, _ = read_output(capsys)
    assert code == 1
    assert out == f"{job_id} FAILURE\n"


@pytest.mark.usefixtures("token_env")
async def test_wait_timeout_exits_3(server: FakeZohoServer,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    job_id = server.add_job(MODULE, RECORD, ["RUNNING"])

    code = await run_against(server, "wait", MODULE, RECORD, job_id, "--timeout", "0.3",
                             "--poll-interval", "0.1")

    out, err = read_output(capsys)
    assert code == 3
    assert out == ""
    assert err.splitlines()[-1].startswith(f"error: merge job {job_id} was still RUNNING after")


@pytest.mark.usefixtures("token_env")
async def test_wait_several_jobs_exits_4(server: FakeZohoServer,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    server.add_job(MODULE, RECORD, ["RUNNING"])
    server.add_job(MODULE, RECORD, ["RUNNING"])

    code = await run_against(server, "wait", MODULE, RECORD)

    _, err = read_output(capsys)
    assert code == 4
    assert "has 2 merge jobs" in err


async def test_rejected_token_exits_4(server: FakeZohoServer, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    revoked = "1000.revoked0token.fedcba9876543210"
    monkeypatch.setenv("ZOHO_ACCESS_TOKEN", revoked)
    job_id = server.add_job(MODULE, RECORD, ["COMPLETED"])

    code = await run_against(server, "wait", MODULE, RECORD, job_id)

    out, err = read_output(capsys)
    assert code == 4
    assert err.startswith("error: Zoho returned INVALID_TOKEN (HTTP 401)")
    assert revoked not in out
    assert revoked not in err


async def test_missing_token_exits_2(server: FakeZohoServer, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ZOHO_ACCESS_TOKEN", raising=False)

    code = await run_against(server, "status", MODULE, RECORD)

    out, err = read_output(capsys)
    assert code == 2
    assert out == ""
    assert "ZOHO_ACCESS_TOKEN is not set" in err
    assert server.requests == []


async def test_empty_named_token_exits_2(server: FakeZohoServer,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CRM_TOKEN", "")

    code = await run_against(server, "wait", MODULE, RECORD, "--access-token-env", "CRM_TOKEN")

    _, err = read_output(capsys)
    assert code == 2
    assert "CRM_TOKEN is not set or empty" in err


@pytest.mark.usefixtures("token_env")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["status", "Le-ads", RECORD], "invalid module 'Le-ads'"),
        (["status", MODULE, "12ab"], "invalid master_record_id '12ab'"),
        (["wait", MODULE, RECORD, "not-a-job"], "invalid job_id 'not-a-job'"),
    ],
)
async def test_invalid_input_exits_2(server: FakeZohoServer, argv: list[str], message: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_against(server, *argv)

    _, err = read_output(capsys)
    assert code == 2
    assert err.startswith(f"error: {message}")
    assert server.requests == []


@pytest.mark.usefixtures("token_env")
async def test_invalid_api_domain_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = await _cli.run(["status", MODULE, RECORD, "--api-domain", "ftp://127.0.0.1"])

    _, err = read_output(capsys)
    assert code == 2
    assert err.startswith("error: invalid api_domain 'ftp://127.0.0.1'")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["status"],
        ["status", MODULE, RECORD, "--api-version", "v5"],
        ["wait", MODULE, RECORD, "--timeout", "0"],
        ["wait", MODULE, RECORD, "--timeout", "nan"],
        ["demo", "--jobs", "0"],
        ["demo", "--jobs", "4", "--records", "5"],
        ["status", MODULE, RECORD, "--access-token-env", TOKEN],
    ],
)
async def test_usage_error_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = await _cli.run(argv)

    out, err = read_output(capsys)
    assert code == 2
    assert out == ""
    assert "usage: zoho-merge" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["status", MODULE, RECORD, "--access-token", TOKEN],
        ["wait", MODULE, RECORD, f"--access-token={TOKEN}"],
        ["status", MODULE, RECORD, "--token", TOKEN],
    ],
)
async def test_token_option_rejected(argv: list[str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = await _cli.run(argv)

    out, err = read_output(capsys)
    assert code == 2
    assert out == ""
    assert "cannot be given on the command line" in err


def test_help_lists_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code = _cli.main(["--help"])

    out, _ = read_output(capsys)
    assert code == 0
    assert "exit codes:" in out
    for line in ("0    the merge completed", "1    the merge ended in FAILURE",
                 "2    invalid usage", "3    the wait timed out", "4    any other error",
                 "130  interrupted"):
        assert line in out


def test_main_interrupted_exits_130(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    async def interrupted(argv: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "run", interrupted)

    code = _cli.main(["status", MODULE, RECORD])

    _, err = read_output(capsys)
    assert code == 130
    assert "interrupted" in err


@pytest.mark.usefixtures("token_env")
async def test_verbose_log_omits_token(server: FakeZohoServer,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    job_id = server.add_job(MODULE, RECORD, [ZohoErrorReply("INTERNAL_ERROR"), "RUNNING",
                                             "COMPLETED"])

    code = await run_against(server, "wait", MODULE, RECORD, job_id, "--poll-interval", "0.05",
                             "--verbose")

    out, err = read_output(capsys)
    assert code == 0
    assert out == f"{job_id} COMPLETED\n"
    assert "INTERNAL_ERROR" in err
    assert f"job {job_id} is COMPLETED" in err


async def test_demo_small_run(capsys: pytest.CaptureFixture[str]) -> None:
    code = await _cli.run(["demo", "--jobs", "20", "--records", "8", "--plain", "--seed", "7"])

    out, err = read_output(capsys)
    assert code == 0
    assert err == ""
    assert out.startswith("demo: 20 merges into 8 master records (8 scheduled as jobs, "
                          "12 done at once), seed 7\n")
    assert "20/20 done  completed 18  failed 2  errors 0" in out
    rows = summary_rows(out)
    assert rows["merges"] == "20"
    assert rows["completed"] == "18"
    assert rows["failed"] == "2"
    assert rows["errors"] == "0"
    assert rows["retries"] == "1"
    # One request per merge, and at least three status polls per scheduled job.
    assert int(rows["requests sent"]) >= 20 + 3 * 8
    assert 0 < float(rows["elapsed"]) < 10
    assert 1 <= int(rows["peak concurrent requests"]) <= 20
    assert out.endswith("all 20 merges ended as scripted\n")


@pytest.fixture
def fast_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the demo's timeline jobs finish within 0.3 s."""
    monkeypatch.setattr(_demo, "RUNNING_AT_RANGE", (0.05, 0.1))
    monkeypatch.setattr(_demo, "MIN_RUNNING_TIME", 0.05)
    monkeypatch.setattr(_demo, "LAST_FINISH", 0.3)


class TerminalOutput(io.StringIO):
    """Captured output that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.usefixtures("fast_demo")
async def test_demo_terminal_progress() -> None:
    out = TerminalOutput()

    code = await _demo.run_demo(jobs=6, records=3, seed=1, plain=False, out=out)

    text = out.getvalue()
    assert code == 0
    # The 3 merges done at once are counted before the first line is drawn.
    assert "\r[#####.....] 3/6 done" in text
    assert "\r[##########] 6/6 done  completed 5  failed 1  errors 0  polls " in text
    assert text.endswith("all 6 merges ended as scripted\n")


@pytest.mark.usefixtures("fast_demo")
async def test_demo_off_script_exits_1(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    add_job = _demo.JobPlan.add_to

    def add_failing_job(plan: _demo.JobPlan, server: FakeZohoServer) -> None:
        add_job(plan, server)
        server.merges.script_job(plan.module, plan.master_record_id, ["FAILURE"])

    monkeypatch.setattr(_demo.JobPlan, "add_to", add_failing_job)

    code = await _cli.run(["demo", "--jobs", "12", "--records", "4", "--plain"])

    # 12 merges into 4 records: 4 jobs, of which 2 (10% of 12, rounded up) should fail.
    out, err = read_output(capsys)
    assert code == 1
    assert summary_rows(out)["failed"] == "4"
    assert err.startswith("error: 2 of 12 merges did not end as scripted:\n")
    assert err.count("expected COMPLETED, got FAILURE") == 2


def test_module_entry_point_runs_demo() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "zoho_merge_async", "demo", "--jobs", "10", "--records", "5",
         "--plain"],
        capture_output=True, text=True, timeout=60, check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert "all 10 merges ended as scripted" in completed.stdout
