"""examples/arq_worker end to end: worker processes on one Redis, one killed mid-wait.

The slow test of the suite (about 25 s). It starts its own redis-server on
127.0.0.1, the example's fake Zoho server and three `arq` worker processes,
enqueues 20 merges and SIGKILLs a worker while it waits for merges. Then it
checks that every merge is reported exactly once with its scripted outcome
and that no merge was requested twice. It also checks that the workers
together never had more requests in flight at the fake server than their
shared budget.

Without the `redis-server` binary the test is skipped, unless
ZOHO_MERGE_REQUIRE_REDIS=1 (as in CI), which makes it fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import pytest
from redis import Redis
from redis.exceptions import RedisError

REPO = Path(__file__).resolve().parent.parent
REDIS_SERVER = shutil.which("redis-server")
REQUIRE_REDIS = os.environ.get("ZOHO_MERGE_REQUIRE_REDIS") == "1"
TOKEN = "1000.arq5ecr3t.0123456789abcdef"
BUDGET = 4
MERGE_COUNT = 20
WORKER_COUNT = 3
PREFIX = "zoho-merge"
WORKER_ENV = {
    "ZOHO_ACCESS_TOKEN": TOKEN,
    "ZOHO_CONCURRENCY_BUDGET": str(BUDGET),
    # Short tries keep arq's lock on a job short: a killed worker's jobs run again
    # job_timeout + 10 s after their try started, here max(2, 2 * 2) + 5 + 10 = 19 s.
    "ZOHO_TRY_SECONDS": "2",
    "ZOHO_REQUEST_TIMEOUT": "2",
    "ZOHO_POLL_INITIAL_DELAY": "0.3",
    "ZOHO_POLL_MAX_DELAY": "1",
    "ZOHO_WAIT_TIMEOUT": "120",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Processes:
    """Child processes of one test, each logging to a file, all stopped by `stop_all`."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._running: dict[str, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self._log_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._running[name] = (process, log)
        return process

    def stop(self, name: str, sig: int = signal.SIGTERM) -> int:
        process, log = self._running.pop(name)
        if process.poll() is None:
            process.send_signal(sig)
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        log.close()
        return code

    def stop_all(self) -> None:
        for name in list(self._running):
            self.stop(name)

    def logs(self) -> str:
        """Return the last lines of every log, for failure messages."""
        parts = []
        for path in sorted(self._log_dir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """Run a redis-server of its own on a free port, without persistence, and stop it."""
    if REDIS_SERVER is None:
        reason = ("redis-server is not on PATH; install the Debian package redis-server "
                  "(apt-get install redis-server) to run this test")
        if REQUIRE_REDIS:
            pytest.fail(f"{reason}: ZOHO_MERGE_REQUIRE_REDIS=1 requires it")
        pytest.skip(reason)
    port = free_port()
    log = (tmp_path / "redis.log").open("wb")
    server = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_redis(port, server)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def wait_for_redis(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    with Redis(host="127.0.0.1", port=port, socket_timeout=1) as client:
        while True:
            try:
                client.ping()
                return
            except RedisError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def child_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ZOHO_")}
    env.update(extra)
    return env


def read_json_file(path: Path, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} was not written within {timeout} s"
        time.sleep(0.05)
    return json.loads(path.read_text())


def merge_key(merge: dict[str, Any]) -> str:
    return f"{merge['module']}:{merge['master_record_id']}:{'+'.join(merge['child_ids'])}"


def read_keys(redis: Redis, prefix: str, merge_keys: list[str]) -> list[bytes | None]:
    """Return the values of the keys `{prefix}{merge}`, None for a missing one."""
    return cast(list[bytes | None], redis.mget([f"{prefix}{key}" for key in merge_keys]))


def waiting_tries(redis: Redis, keys: list[str]) -> dict[str, list[str]] | None:
    """Map each worker to the unfinished merges whose wait it runs now.

    Returns None until every merge has a wait state or an outcome and some,
    not all, have an outcome. A merge counts while arq has locked its job (arq's
    `arq:in-progress:` key) and its state has no final status.
    """
    states = read_keys(redis, f"{PREFIX}:state:", keys)
    outcomes = read_keys(redis, f"{PREFIX}:outcome:", keys)
    owners = read_keys(redis, f"{PREFIX}:owner:", keys)
    running = read_keys(redis, "arq:in-progress:merge:", keys)
    reported = sum(outcome is not None for outcome in outcomes)
    if not all(state or outcome for state, outcome in zip(states, outcomes, strict=True)):
        return None
    if not 0 < reported < len(keys):
        return None

    tries: dict[str, list[str]] = {}
    for key, state, outcome, owner, lock in zip(keys, states, outcomes, owners, running,
                                                strict=True):
        if state is None or outcome or not owner or not lock:
            continue
        if json.loads(state)["last_status"] not in ("COMPLETED", "FAILURE"):
            tries.setdefault(owner.decode(), []).append(key)
    return tries


def find_victim(redis: Redis, merges: list[dict[str, Any]],
                workers: dict[int, str]) -> tuple[str, list[str]]:
    """Wait until every merge was sent and some have outcomes, then pick a waiting worker.

    Returns the name of the worker of ours that runs the most waits of
    unfinished merges, and those merges. Waiting until every merge has a wait
    state or an outcome keeps the kill out of the window between sending a
    merge request and storing its job id.
    """
    keys = [merge_key(merge) for merge in merges]
    pids = {str(pid) for pid in workers}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tries = waiting_tries(redis, keys) or {}
        ours = {name: waits for name, waits in tries.items() if name.rsplit(":", 1)[1] in pids}
        if ours:
            victim = max(ours, key=lambda name: len(ours[name]))
            return victim, ours[victim]
        time.sleep(0.05)
    raise AssertionError("no worker was waiting for a merge while some outcomes were reported")


def wait_for_outcomes(redis: Redis, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while cast(int, redis.llen(f"{PREFIX}:outcomes")) < count:
        assert time.monotonic() < deadline, f"not every outcome was reported within {timeout} s"
        time.sleep(0.2)


def test_arq_workers_survive_kill(redis_url: str, tmp_path: Path) -> None:
    processes = Processes(tmp_path)
    redis = Redis.from_url(redis_url)
    try:
        processes.start("fake_zoho", [
            sys.executable, "-m", "examples.arq_worker.fake_zoho", "--dir", str(tmp_path),
            "--merges", str(MERGE_COUNT), "--max-concurrency", str(BUDGET)],
            child_env(ZOHO_ACCESS_TOKEN=TOKEN))
        server = read_json_file(tmp_path / "server.json", timeout=20)
        merges: list[dict[str, Any]] = json.loads((tmp_path / "merges.json").read_text())
        env = child_env(REDIS_URL=redis_url, ZOHO_API_DOMAIN=server["api_domain"], **WORKER_ENV)

        workers = {}
        for number in range(WORKER_COUNT):
            worker = processes.start(f"worker{number}", [
                sys.executable, "-m", "arq", "examples.arq_worker.worker.WorkerSettings"], env)
            workers[worker.pid] = f"worker{number}"
        enqueued = subprocess.run(
            [sys.executable, "-m", "examples.arq_worker.enqueue", "--from-file",
             str(tmp_path / "merges.json")], cwd=REPO, env=env, capture_output=True, timeout=60)
        assert enqueued.returncode == 0, enqueued.stderr.decode()

        victim, victim_merges = find_victim(redis, merges, workers)
        victim_process = workers[int(victim.rsplit(":", 1)[1])]
        assert processes.stop(victim_process, signal.SIGKILL) == -signal.SIGKILL
        killed_at = time.monotonic()

        wait_for_outcomes(redis, MERGE_COUNT, timeout=60)
        recovery = time.monotonic() - killed_at
        for number in range(WORKER_COUNT):
            if f"worker{number}" != victim_process:
                processes.stop(f"worker{number}")
        processes.stop("fake_zoho")
        stats = read_json_file(tmp_path / "stats.json", timeout=10)
        items = cast(list[bytes], redis.lrange(f"{PREFIX}:outcomes", 0, -1))
        reported = [json.loads(item) for item in items]
    except BaseException:
        print(processes.logs())
        raise
    finally:
        processes.stop_all()
        redis.close()

    by_merge = {outcome["merge"]: outcome for outcome in reported}
    counts = Counter(outcome["merge"] for outcome in reported)
    assert len(reported) == MERGE_COUNT
    assert set(counts.values()) == {1}
    for merge in merges:
        assert by_merge[merge_key(merge)]["outcome"] == merge["expected"], merge_key(merge)

    assert victim_merges
    for key in victim_merges:
        assert by_merge[key]["worker"] != victim, key
        assert by_merge[key]["resumed"] is True, key

    assert stats["posts"] == {merge["master_record_id"]: 1 for merge in merges}
    assert stats["rate_limited"] == 0
    assert stats["max_in_flight"] <= BUDGET
    print(f"peak requests in flight {stats['max_in_flight']} of budget {BUDGET}; "
          f"requests {stats['requests']}; merges resumed after the kill {len(victim_merges)}; "
          f"all outcomes {recovery:.1f} s after the kill")
