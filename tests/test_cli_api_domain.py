"""`zoho-merge`: an empty API domain is invalid input, and --json help fits every command.

aioresponses intercepts every aiohttp request, so a command that wrongly
falls back to a real Zoho host records a request here instead of sending it.
"""

from __future__ import annotations

import pytest
from aioresponses import aioresponses
from conftest import request_count

from zoho_merge_async import _cli

TOKEN = "1000.cl1d0ma1n.0123456789abcdef"
MODULE = "Leads"
RECORD = "2378988000000509963"
CHILD = "2378988000000509964"


@pytest.fixture(autouse=True)
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOHO_ACCESS_TOKEN", TOKEN)
    monkeypatch.delenv("ZOHO_API_DOMAIN", raising=False)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.mark.parametrize("argv", [
    ["status", MODULE, RECORD],
    ["wait", MODULE, RECORD, "2423488000000513988"],
    ["merge", MODULE, RECORD, CHILD],
])
@pytest.mark.parametrize("value", ["", "  "])
async def test_empty_option_exits_2(mocked: aioresponses, capsys: pytest.CaptureFixture[str],
                                    argv: list[str], value: str) -> None:
    code = await _cli.run([*argv, "--api-domain", value])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: invalid --api-domain {value!r}")
    assert request_count(mocked) == 0


async def test_empty_variable_exits_2(mocked: aioresponses, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ZOHO_API_DOMAIN", "")

    code = await _cli.run(["status", MODULE, RECORD])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: invalid ZOHO_API_DOMAIN ''")
    assert request_count(mocked) == 0


async def test_option_wins_over_variable(mocked: aioresponses,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOHO_API_DOMAIN", "")
    domain = "https://www.zohoapis.eu"
    mocked.get(f"{domain}/crm/v7/{MODULE}/{RECORD}/actions/merge", status=204)

    code = await _cli.run(["status", MODULE, RECORD, "--api-domain", domain])

    assert code == 0
    assert request_count(mocked) == 1


@pytest.mark.parametrize("command", ["status", "wait", "merge"])
async def test_json_help_fits_command(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code = await _cli.run([command, "--help"])

    out = capsys.readouterr().out
    assert code == 0
    assert "print the result as JSON instead of text lines" in out
    assert "<job_id> <STATUS>' lines" not in out
