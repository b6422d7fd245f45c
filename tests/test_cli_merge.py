"""The `zoho-merge merge` command against a FakeZohoServer on 127.0.0.1."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest

from zoho_merge_async import _cli
from zoho_merge_async._fake_merge import LARGE_MERGE_RELATED_RECORDS
from zoho_merge_async.testing import FakeZohoServer, ZohoErrorReply

TOKEN = "1000.cli5ecr3t.0123456789abcdef"
MODULE = "Accounts"
MASTER = "2378988000000800001"
SMALL_CHILD = "2378988000000800002"
LARGE_CHILD = "2378988000000800003"


@pytest.fixture
async def server() -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=(TOKEN,)) as fake:
        fake.merges.add_record(MODULE, MASTER)
        fake.merges.add_record(MODULE, SMALL_CHILD)
        fake.merges.add_record(MODULE, LARGE_CHILD,
                               related_records=LARGE_MERGE_RELATED_RECORDS + 1)
        yield fake


@pytest.fixture(autouse=True)
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOHO_ACCESS_TOKEN", TOKEN)
    monkeypatch.delenv("ZOHO_API_DOMAIN", raising=False)


async def run_merge(server: FakeZohoServer, *argv: str) -> int:
    return await _cli.run(["merge", "--api-domain", server.api_domain, *argv])


def read_output(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Return (stdout, stderr) so far, after checking that neither shows the token."""
    out, err = capsys.readouterr()
    assert TOKEN not in out
    assert TOKEN not in err
    return out, err


async def test_merge_done_at_once(server: FakeZohoServer,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_merge(server, MODULE, MASTER, SMALL_CHILD)

    out, err = read_output(capsys)
    assert code == 0
    assert out == f"merged {MODULE} {SMALL_CHILD} into {MASTER}\n"
    assert err == ""


async def test_merge_scheduled_no_wait(server: FakeZohoServer,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_merge(server, MODULE, MASTER, LARGE_CHILD)

    out, _ = read_output(capsys)
    assert code == 0
    assert re.fullmatch(r"[0-9]{19} SCHEDULED\n", out)
    assert [request.method for request in server.requests] == ["POST"]


async def test_merge_wait_completed(server: FakeZohoServer,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    server.merges.script_job(MODULE, MASTER, ["COMPLETED"])

    code = await run_merge(server, MODULE, MASTER, LARGE_CHILD, SMALL_CHILD, "--wait",
                           "--json")

    out, _ = read_output(capsys)
    answer = json.loads(out)
    assert code == 0
    assert answer["outcome"] == "SCHEDULED"
    assert answer["status"] == "COMPLETED"
    assert answer["child_ids"] == [LARGE_CHILD, SMALL_CHILD]
    assert [request.method for request in server.requests] == ["POST", "GET"]


async def test_merge_wait_failure_exits_1(server: FakeZohoServer,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    server.merges.script_job(MODULE, MASTER, ["FAILURE"])

    code = await run_merge(server, MODULE, MASTER, LARGE_CHILD, "--wait")

    out, _ = read_output(capsys)
    assert code == 1
    assert out.endswith(" FAILURE\n")


async def test_merge_wait_timeout_exits_3(server: FakeZohoServer,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    server.merges.script_job(MODULE, MASTER, ["RUNNING"])

    code = await run_merge(server, MODULE, MASTER, LARGE_CHILD, "--wait", "--timeout", "0.05")

    _, err = read_output(capsys)
    assert code == 3
    assert "was still RUNNING" in err


async def test_merge_json_immediate(server: FakeZohoServer,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_merge(server, MODULE, MASTER, SMALL_CHILD, "--json")

    out, _ = read_output(capsys)
    assert code == 0
    assert json.loads(out) == {"outcome": "MERGED", "module": MODULE,
                               "master_record_id": MASTER, "child_ids": [SMALL_CHILD],
                               "job_id": None, "status": "COMPLETED"}


async def test_merge_field_option_sent(server: FakeZohoServer) -> None:
    code = await run_merge(server, MODULE, MASTER, SMALL_CHILD, LARGE_CHILD,
                           "--field", f"{LARGE_CHILD}:Phone", "--field", f"{SMALL_CHILD}:Email")

    assert code == 0
    assert json.loads(server.requests[0].body) == {"merge": [{"data": [
        {"id": SMALL_CHILD, "_fields": [{"api_name": "Email"}]},
        {"id": LARGE_CHILD, "_fields": [{"api_name": "Phone"}]},
    ]}]}


@pytest.mark.parametrize(("argv", "expected"), [
    ([MASTER, SMALL_CHILD, LARGE_CHILD, "3"], "3 child records given"),
    ([MASTER, MASTER], f"master record {MASTER} is also given as a child record"),
    ([MASTER, SMALL_CHILD, SMALL_CHILD], f"child record {SMALL_CHILD} is given twice"),
    ([MASTER, SMALL_CHILD, "--field", "Email"], "invalid --field 'Email'"),
    ([MASTER, SMALL_CHILD, "--field", "999:Email"], "999 is not one of the child records"),
    ([MASTER, SMALL_CHILD, "--timeout", "5"], "--timeout applies only to --wait"),
])
async def test_merge_bad_input_exits_2(server: FakeZohoServer,
                                       capsys: pytest.CaptureFixture[str], argv: list[str],
                                       expected: str) -> None:
    code = await run_merge(server, MODULE, *argv)

    _, err = read_output(capsys)
    assert code == 2
    assert expected in err
    assert server.requests == []


async def test_merge_not_allowed_exits_4(server: FakeZohoServer,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    server.merges.fail_next(ZohoErrorReply("NOT_ALLOWED", envelope="merge"))

    code = await run_merge(server, MODULE, MASTER, SMALL_CHILD)

    _, err = read_output(capsys)
    assert code == 4
    assert "NOT_ALLOWED" in err


async def test_merge_unknown_outcome_exits_4(server: FakeZohoServer,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    server.merges.fail_next(ZohoErrorReply("INTERNAL_ERROR"))

    code = await run_merge(server, MODULE, MASTER, SMALL_CHILD)

    _, err = read_output(capsys)
    assert code == 4
    assert "may or may not have been done or scheduled" in err
    assert len(server.requests) == 1
