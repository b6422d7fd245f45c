"""Progress output of `zoho-merge wait`, and the fleet counts in the demo's summary."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import AsyncIterator

import pytest

from zoho_merge_async import MergeStatus, MergeStatusChange, _cli, _demo
from zoho_merge_async._cli_progress import WaitProgress
from zoho_merge_async.testing import FakeZohoServer

TOKEN = "1000.cli-progress-token.0123456789"
MODULE = "Leads"
RECORD = "2378988000000509963"
SUMMARY_ROW = re.compile(r"^  (\S+(?: \S+)*) {2,}(\S+)", re.MULTILINE)


class TerminalOutput(io.StringIO):
    """Captured output that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
async def server() -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=(TOKEN,)) as fake:
        yield fake


@pytest.fixture(autouse=True)
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOHO_ACCESS_TOKEN", TOKEN)
    monkeypatch.delenv("ZOHO_API_DOMAIN", raising=False)


async def run_wait(server: FakeZohoServer, *options: str) -> int:
    job_id = server.add_job(MODULE, RECORD, ["SCHEDULED", "RUNNING", "COMPLETED"])
    return await _cli.run(["wait", "--api-domain", server.api_domain, MODULE, RECORD, job_id,
                           "--poll-interval", "0.05", *options])


def change(previous: MergeStatus | None, status: MergeStatus, polls: int) -> MergeStatusChange:
    return MergeStatusChange(MODULE, RECORD, "2423488000000513988", previous, status, polls, 1.25)


def test_plain_line_per_change() -> None:
    out = io.StringIO()
    progress = WaitProgress(out, live=False)

    progress(change(None, MergeStatus.SCHEDULED, 1))
    progress(change(MergeStatus.SCHEDULED, MergeStatus.FAILURE, 4))

    assert out.getvalue().splitlines() == [
        "   1.2 s  job 2423488000000513988: SCHEDULED (poll 1)",
        "   1.2 s  job 2423488000000513988: SCHEDULED -> FAILURE (poll 4)",
    ]


async def test_live_line_redrawn() -> None:
    out = TerminalOutput()
    progress = WaitProgress(out, live=True)

    async with progress.running():
        progress(change(None, MergeStatus.SCHEDULED, 1))
        progress(change(MergeStatus.SCHEDULED, MergeStatus.RUNNING, 2))
        progress(change(MergeStatus.RUNNING, MergeStatus.COMPLETED, 3))

    text = out.getvalue()
    assert "\r[#..] SCHEDULED job 2423488000000513988" in text
    assert "\r[##.] RUNNING   job 2423488000000513988" in text
    assert "\r[###] COMPLETED job 2423488000000513988" in text
    assert text.endswith(" s\n")
    assert text.count("\n") == 1


async def test_wait_plain_lines_on_pipe(server: FakeZohoServer,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_wait(server)

    out, err = capsys.readouterr()
    assert code == 0
    assert out.endswith(" COMPLETED\n")
    assert len(err.splitlines()) == 3
    assert "\r" not in err
    assert "RUNNING -> COMPLETED (poll 3)" in err


async def test_wait_live_line_on_terminal(server: FakeZohoServer,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    terminal = TerminalOutput()
    monkeypatch.setattr(sys, "stderr", terminal)

    code = await run_wait(server)

    out, _ = capsys.readouterr()
    text = terminal.getvalue()
    assert code == 0
    assert out.endswith(" COMPLETED\n")
    assert "\r[#..] SCHEDULED" in text
    assert "\r[###] COMPLETED" in text
    assert text.endswith("\n")
    assert TOKEN not in text


async def test_wait_no_progress(server: FakeZohoServer,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_wait(server, "--no-progress")

    out, err = capsys.readouterr()
    assert code == 0
    assert out.endswith(" COMPLETED\n")
    assert err == ""


async def test_demo_prints_fleet_counts(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    # Timeline jobs that finish within 0.3 s keep the demo short.
    monkeypatch.setattr(_demo, "RUNNING_AT_RANGE", (0.05, 0.1))
    monkeypatch.setattr(_demo, "MIN_RUNNING_TIME", 0.05)
    monkeypatch.setattr(_demo, "LAST_FINISH", 0.3)

    code = await _cli.run(["demo", "--jobs", "12", "--records", "6", "--plain", "--seed", "5"])

    out, _ = capsys.readouterr()
    rows = dict(SUMMARY_ROW.findall(out[out.index("\nsummary\n"):]))
    assert code == 0
    assert rows["max concurrency"] == "10"
    assert int(rows["peak concurrent requests"]) <= 10
    assert 6 <= int(rows["polls sent"]) < int(rows["requests sent"])
    assert int(rows["credits saved"]) >= 0
    assert rows["rate limited"] == "0"
