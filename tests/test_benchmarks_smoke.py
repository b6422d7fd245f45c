"""Smoke runs of the programs in benchmarks/ with small sizes.

The tests check the structure and sanity of each result (rows present, no
errors, positive times and ratios), never a timing or a target, because timings of
such small runs on a shared machine vary too much to compare. The fake server runs in a child
process, as in a full run.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_benchmark(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import benchmarks.<name> from the repository root, which is not on sys.path by default."""
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module(f"benchmarks.{name}")


def test_overhead_small_run(monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    overhead = load_benchmark("overhead", monkeypatch)

    result = overhead.main(["--calls", "30", "--rounds", "2", "--concurrency", "1,3"])

    assert result.errors == 0
    assert [level.concurrency for level in result.levels] == [1, 3]
    for level in result.levels:
        assert level.bare_cpu_us > 0
        assert level.sdk_cpu_us > 0
        assert level.paired_ratio > 0
        assert level.prebuilt_cpu_us > 0
        assert level.prebuilt_ratio > 0
    assert [row[0] for row in result.table.rows] == ["1", "3"]
    assert "MergeClient CPU µs/call" in capsys.readouterr().out


def test_overhead_rejects_zero_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    overhead = load_benchmark("overhead", monkeypatch)

    with pytest.raises(SystemExit) as exit_info:
        overhead.main(["--calls", "0"])

    assert exit_info.value.code == 2


def test_official_sdk_small_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("zohocrmsdk", reason="the official SDK comes with the bench extra")
    official_sdk = load_benchmark("official_sdk", monkeypatch)
    monkeypatch.chdir(tmp_path)

    result = official_sdk.main(["--calls", "20", "--rounds", "1", "--threads", "1,2",
                                "--coroutines", "1,5"])

    assert result.errors == 0
    assert [config.workers for config in result.official] == [1, 2]
    assert [config.workers for config in result.ours] == [1, 5]
    assert all(config.calls_per_second > 0 for config in result.official + result.ours)
    assert result.speed_up > 0
    assert len(result.table.rows) == 4
    assert list(tmp_path.iterdir()) == []


def test_official_sdk_rejects_remote_domain(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    pytest.importorskip("zohocrmsdk", reason="the official SDK comes with the bench extra")
    load_benchmark("official_sdk", monkeypatch)
    adapter = importlib.import_module("benchmarks._official_sdk")

    with pytest.raises(ValueError, match="only against a local server"):
        adapter.initialise("https://www.zohoapis.com", "token", tmp_path)


def test_official_sdk_rejects_bad_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    official_sdk = load_benchmark("official_sdk", monkeypatch)

    with pytest.raises(SystemExit) as exit_info:
        official_sdk.main(["--threads", "0"])

    assert exit_info.value.code == 2


def test_import_time_small_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import_time = load_benchmark("import_time", monkeypatch)

    result = import_time.main(["--runs", "1"])

    assert result.startup_ms > 0
    assert result.milliseconds("zoho_merge_async") > 0
    assert result.table.rows[0][0].startswith("interpreter start-up")
    assert len(result.table.rows) == len(result.times) + 1


def test_server_process_rejects_command(monkeypatch: pytest.MonkeyPatch) -> None:
    harness = load_benchmark("_harness", monkeypatch)

    with harness.ServerProcess() as server, \
            pytest.raises(harness.ServerError, match="unknown command"):
        server.command("shutdown")


def test_server_process_stops_on_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    harness = load_benchmark("_harness", monkeypatch)

    with harness.ServerProcess() as server:
        process = server._process
        job_ids, _ = server.add_jobs(
            [{"module": "Leads", "master_record_id": "111", "statuses": ["RUNNING"]}])

    assert len(job_ids) == 1
    assert process.poll() is not None


def test_table_rejects_short_row(monkeypatch: pytest.MonkeyPatch) -> None:
    harness = load_benchmark("_harness", monkeypatch)

    with pytest.raises(ValueError, match="has 1 cells, expected 2"):
        harness.Table(("name", "value"), (("only name",),))



def test_fleet_small_run(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = load_benchmark("fleet", monkeypatch)

    result = fleet.main(["--waits", "60", "--waiters-per-job", "2", "--jobs-per-record", "3",
                         "--first-finish", "0.2", "--last-finish", "0.6",
                         "--initial-delay", "0.1", "--max-delay", "0.2", "--min-interval", "0.05",
                         "--latency", "0.005",
                         "--max-concurrency", "4"])

    shared, independent = result.mode("shared"), result.mode("independent")
    for mode in (shared, independent):
        assert mode.failed_waits == 0
        assert mode.error_replies == 0
        assert 1 <= mode.client_peak_in_flight <= 4
        assert mode.wall_seconds >= mode.last_completion_seconds
        assert mode.schedule_bound_seconds >= mode.last_completion_seconds
    assert shared.requests < independent.requests
    assert shared.scheduled_requests > 0
    assert shared.scheduled_requests < independent.scheduled_requests
    assert result.peak_rss_bytes > 0
    assert [row[0] for row in result.table.rows] == ["shared", "independent"]


def test_fleet_schedule_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = load_benchmark("fleet", monkeypatch)
    policy = fleet.PollPolicy(initial_delay=1.0, multiplier=1.5, max_delay=3.0, jitter=0.0,
                              min_interval=0.0)

    assert fleet.schedule_offsets(policy, 7.0) == [0.0, 1.0, 2.5, 4.75, 7.75]
    assert fleet.schedule_bound(policy, [0.5, 2.6]) == 4.75
    assert fleet.schedule_bound(policy, [2.5]) == 2.5


def test_fleet_schedule_min_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = load_benchmark("fleet", monkeypatch)
    policy = fleet.PollPolicy(initial_delay=0.5, multiplier=2.0, max_delay=3.0, jitter=0.0,
                              min_interval=1.5)

    assert fleet.schedule_offsets(policy, 4.0) == [0.0, 1.5, 3.0, 5.0]


def test_fleet_rejects_uneven_waits(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    fleet = load_benchmark("fleet", monkeypatch)

    with pytest.raises(SystemExit) as exit_info:
        fleet.main(["--waits", "7", "--waiters-per-job", "2"])

    assert exit_info.value.code == 2
    assert "invalid waits 7" in capsys.readouterr().err
