"""Soak run: many polls through random faults, counting what escapes and what leaks.

    python -m benchmarks.soak [--polls 100000] [--workers 200] [--fault-rate 0.3] [--seed 1]

A raw HTTP server in a child process responds to each request on 127.0.0.1
with a RUNNING status (now and then COMPLETED, which ends the wait) or, with
probability `--fault-rate`, with a fault drawn uniformly from `FAULTS`:
Zoho and gateway error pages, broken or oversized bodies, a redirect, 429,
401, 204, a close without a response or in the middle of the body, silence,
one byte every 0.1 s, and a kept-alive connection closed on its next request.
`--workers` coroutines share one `MergeClient` and run `wait_for_merge` one
after another, on records shared between workers, and cancel about 10 % of
their waits at a random moment. The run stops starting
waits once the client has sent `--polls` requests.

The report gives the requests sent and received, the faults injected, the
typed errors by class and the resident memory of the client process. It
also gives counts that must be 0: untyped exceptions, connections still
acquired by the client, request slots still held, connections open at the
server after the client closed, and tasks left. The exit status is 1 when
any of them is not 0.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import random
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from zoho_merge_async import (
    ConcurrencyLimiter,
    MergeClient,
    PollPolicy,
    RetryPolicy,
    ZohoError,
    wait_for_merge,
)

from ._harness import TOKEN, Table, current_rss_bytes, print_report

MODULE = "Leads"
FIRST_RECORD_ID = 4000000000000000000
FAULTS = (
    "internal_error", "other_code_500", "empty_500", "html_502", "html_503", "html_504",
    "html_200", "empty_200", "text_plain_json", "truncated_json", "wrong_shape", "other_job",
    "oversized", "redirect", "rate_limited", "invalid_token", "no_content",
    "close_without_response", "close_mid_body", "silence", "trickle", "drop_next",
)
"""Fault kinds the server injects, each equally likely."""
COMPLETED_SHARE = 0.05
"""Share of the responses without a fault that report COMPLETED."""
CANCEL_SHARE = 0.1
"""Share of the waits cancelled at a random moment in their first 50 ms."""
REQUEST_TIMEOUT = 0.25
"""Seconds per request, so that silence and one byte per 0.1 s cost little time."""
POLL = PollPolicy(initial_delay=0.005, multiplier=1.0, max_delay=0.005, jitter=0.0,
                  min_interval=0.0, timeout=3.0)
RETRY = RetryPolicy(initial_delay=0.005, multiplier=1.0, max_delay=0.005, jitter=0.0,
                    max_attempts=3)
HTML = b"<html><head><title>Error</title></head><body>gateway</body></html>"


# The fault server, run in a child process


def _response(status: int, body: bytes, *, content_type: str = "application/json",
              headers: tuple[str, ...] = (), close: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}", *headers]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _status_body(job_id: str, status: str) -> bytes:
    return json.dumps({"merge": [{"job_id": job_id, "status": status}]}).encode()


def _error_body(code: str) -> bytes:
    return json.dumps({"code": code, "details": {}, "message": "", "status": "error"}).encode()


def fault_response(kind: str, job_id: str, rng: random.Random) -> bytes:
    """Return the bytes sent for a fault that is a complete HTTP response."""
    responses: dict[str, Callable[[], bytes]] = {
        "internal_error": lambda: _response(500, _error_body("INTERNAL_ERROR")),
        "other_code_500": lambda: _response(500, _error_body("BACKEND_DOWN")),
        "empty_500": lambda: _response(500, b""),
        "html_502": lambda: _response(502, HTML, content_type="text/html"),
        "html_503": lambda: _response(503, HTML, content_type="text/html"),
        "html_504": lambda: _response(504, HTML, content_type="text/html"),
        "html_200": lambda: _response(200, HTML, content_type="text/html"),
        "empty_200": lambda: _response(200, b""),
        "text_plain_json": lambda: _response(200, _status_body(job_id, "RUNNING"),
                                             content_type="text/plain"),
        "truncated_json": lambda: _response(200, _status_body(job_id, "RUNNING")[:-5]),
        "wrong_shape": lambda: _response(200, rng.choice(
            [b'{"merge": []}', b'{"merge": [{"job_id": null, "status": null}]}',
             b'{"merge": [{"job_id": 1, "status": 2}]}', b'{"merge": [{}]}'])),
        "other_job": lambda: _response(200, _status_body("1" + job_id[1:], "RUNNING")),
        "oversized": lambda: _response(200, b" " * (1024 * 1024 + 1)),
        "redirect": lambda: _response(302, b"", headers=("Location: http://127.0.0.2:9/x",)),
        "rate_limited": lambda: _response(429, _error_body("TOO_MANY_REQUESTS"), headers=rng.choice(
            [(), ("Retry-After: 0",), ("Retry-After: soon",)])),
        "invalid_token": lambda: _response(401, _error_body("INVALID_TOKEN")),
        "no_content": lambda: b"HTTP/1.1 204 No Content\r\n\r\n",
    }
    return responses[kind]()


@dataclass
class ServerState:
    """Counts kept by the fault server."""

    requests: int = 0
    open_connections: int = 0
    faults: collections.Counter[str] = field(default_factory=collections.Counter)


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 state: ServerState, rng: random.Random, fault_rate: float) -> None:
    state.open_connections += 1
    drop_next = False
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            state.requests += 1
            if drop_next:
                return
            target = head.split(b" ", 2)[1].decode("latin-1")
            job_id = target.rpartition("job_id=")[2] or "0"
            if rng.random() >= fault_rate:
                status = "COMPLETED" if rng.random() < COMPLETED_SHARE else "RUNNING"
                writer.write(_response(200, _status_body(job_id, status)))
                await writer.drain()
                continue
            kind = rng.choice(FAULTS)
            state.faults[kind] += 1
            if not await _apply_fault(kind, job_id, reader, writer, rng):
                return
            drop_next = kind == "drop_next"
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        state.open_connections -= 1
        writer.close()


async def _apply_fault(kind: str, job_id: str, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, rng: random.Random) -> bool:
    """Carry out one fault; return False when the connection must end."""
    if kind == "close_without_response":
        return False
    if kind == "close_mid_body":
        response = _response(200, _status_body(job_id, "RUNNING"))
        writer.write(response[:len(response) - 10])
        await writer.drain()
        return False
    if kind in ("silence", "trickle"):
        response = _response(200, _status_body(job_id, "RUNNING"))
        for index in range(len(response)):
            if kind == "trickle":
                writer.write(response[index:index + 1])
                await writer.drain()
            try:
                # The client's request timeout closes the connection, which ends this read.
                if not await asyncio.wait_for(reader.read(1024), 0.1):
                    return False
            except TimeoutError:
                pass
        return False
    if kind == "drop_next":
        writer.write(_response(200, _status_body(job_id, "RUNNING")))
    else:
        writer.write(fault_response(kind, job_id, rng))
    await writer.drain()
    return True


async def _server_main(pipe: Connection, seed: int, fault_rate: float) -> None:
    state = ServerState()
    rng = random.Random(seed)
    server = await asyncio.start_server(
        lambda reader, writer: _serve(reader, writer, state, rng, fault_rate), "127.0.0.1", 0,
        backlog=1024)
    pipe.send(server.sockets[0].getsockname()[1])
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command == "stop":
            break
        pipe.send({"requests": state.requests, "open_connections": state.open_connections,
                   "faults": dict(state.faults)})
    server.close()


def run_server(pipe: Connection, seed: int, fault_rate: float) -> None:
    """Serve faults on 127.0.0.1 until the parent sends "stop"; the child's entry point."""
    asyncio.run(_server_main(pipe, seed, fault_rate))


# The client side


@dataclass
class ClientTally:
    """Outcomes of the waits of one soak run."""

    waits: int = 0
    completed: int = 0
    cancelled: int = 0
    typed: collections.Counter[str] = field(default_factory=collections.Counter)
    untyped: collections.Counter[str] = field(default_factory=collections.Counter)
    rss_tenth: int = 0
    """Resident memory in bytes once a tenth of the requests were sent."""


async def _worker(client: MergeClient, records: list[str], target: int, rng: random.Random,
                  tally: ClientTally) -> None:
    while client.stats.requests_sent < target:
        record = rng.choice(records)
        job_id = str(int(record) + 1)
        task = asyncio.create_task(wait_for_merge(client, MODULE, record, job_id))
        if rng.random() < CANCEL_SHARE:
            asyncio.get_running_loop().call_later(rng.uniform(0.0, 0.05), task.cancel)
        await asyncio.wait({task})
        tally.waits += 1
        if task.cancelled():
            tally.cancelled += 1
        elif isinstance(task.exception(), ZohoError):
            tally.typed[type(task.exception()).__name__] += 1
        elif task.exception() is not None:
            tally.untyped[repr(task.exception())[:120]] += 1
        else:
            tally.completed += 1
        if not tally.rss_tenth and client.stats.requests_sent >= target // 10:
            tally.rss_tenth = current_rss_bytes()


@dataclass(frozen=True, slots=True)
class SoakResult:
    """Counts and memory of one soak run."""

    seconds: float
    tally: ClientTally
    requests_sent: int
    polls_sent: int
    retries: int
    server: dict[str, object]
    acquired_connections: int
    held_slots: int
    open_at_server: int
    leftover_tasks: int
    rss_start: int
    rss_tenth: int
    rss_end: int
    rss_peak: int


async def _settle_server(pipe: Connection) -> dict[str, object]:
    """Ask the server for its counts until its open connections reach 0, for at most 5 s."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 5.0
    while True:
        pipe.send("stats")
        stats: dict[str, object] = await loop.run_in_executor(None, pipe.recv)
        if stats["open_connections"] == 0 or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.1)


async def soak(pipe: Connection, port: int, polls: int, workers: int, seed: int) -> SoakResult:
    """Run the workers against the server on `port` until `polls` requests were sent."""
    rng = random.Random(seed)
    records = [str(FIRST_RECORD_ID + 10 * index) for index in range(workers * 2)]
    client = MergeClient(TOKEN, api_domain=f"http://127.0.0.1:{port}", poll=POLL, retry=RETRY,
                         request_timeout=REQUEST_TIMEOUT, rate_limit="slow_down")
    tally = ClientTally()
    rss_start = current_rss_bytes()
    started = time.monotonic()
    tasks = [asyncio.create_task(_worker(client, records, polls, random.Random(rng.random()),
                                         tally)) for _ in range(workers)]
    await asyncio.gather(*tasks)
    seconds = time.monotonic() - started
    rss_end = current_rss_bytes()

    session = client._session
    acquired = len(session.connector._acquired) if session and session.connector else 0
    limiter = client.limiter
    assert isinstance(limiter, ConcurrencyLimiter)
    held_slots = limiter.in_flight + limiter.queued
    stats = client.stats
    await client.aclose()
    server = await _settle_server(pipe)
    leftover = len(asyncio.all_tasks()) - 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return SoakResult(seconds, tally, stats.requests_sent, stats.polls_sent, stats.retries,
                      server, acquired, held_slots, int(str(server["open_connections"])), leftover,
                      rss_start, tally.rss_tenth, rss_end, peak)


def report(result: SoakResult, arguments: argparse.Namespace) -> Table:
    """Build the result table; the untyped exceptions, if any, are printed separately."""
    mib = 1024 * 1024
    faults = result.server["faults"]
    assert isinstance(faults, dict)
    typed = ", ".join(f"{name} {count}" for name, count in result.tally.typed.most_common())
    rows = [
        ("arguments", f"--polls {arguments.polls} --workers {arguments.workers} "
                      f"--fault-rate {arguments.fault_rate} --seed {arguments.seed}"),
        ("wall time", f"{result.seconds:.0f} s"),
        ("polls sent by waits", str(result.polls_sent)),
        ("requests sent by the client (repeats included)", str(result.requests_sent)),
        ("requests received by the server", str(result.server["requests"])),
        ("INTERNAL_ERROR retries", str(result.retries)),
        ("faults injected", f"{sum(faults.values())} ({len(faults)} kinds)"),
        ("waits: completed / cancelled / typed error", f"{result.tally.completed} / "
         f"{result.tally.cancelled} / {sum(result.tally.typed.values())}"),
        ("typed errors by class", typed),
        ("untyped exceptions (must be 0)", str(sum(result.tally.untyped.values()))),
        ("connections acquired after the run (must be 0)", str(result.acquired_connections)),
        ("request slots held or queued after the run (must be 0)", str(result.held_slots)),
        ("connections open at the server after close (must be 0)", str(result.open_at_server)),
        ("tasks left after close (must be 0)", str(result.leftover_tasks)),
        ("client RSS at start / after 10 % / at end / peak",
         f"{result.rss_start / mib:.0f} / {result.rss_tenth / mib:.0f} / "
         f"{result.rss_end / mib:.0f} / {result.rss_peak / mib:.0f} MiB"),
    ]
    return Table(("measure", "value"), tuple(rows))


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print its report; return 1 if a must-be-0 count is not 0."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--polls", type=int, default=100_000,
                        help="requests the client sends before it stops starting waits")
    parser.add_argument("--workers", type=int, default=200, help="concurrent waits")
    parser.add_argument("--fault-rate", type=float, default=0.3,
                        help="share of requests that get a fault as response, from 0 to 1")
    parser.add_argument("--seed", type=int, default=1, help="seed of both random generators")
    arguments = parser.parse_args(argv)
    if arguments.polls < 10 or arguments.workers < 1 or not 0 <= arguments.fault_rate <= 1:
        parser.error("--polls must be at least 10, --workers at least 1, "
                     "and --fault-rate between 0 and 1")

    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    server = context.Process(target=run_server, daemon=True,
                             args=(child_end, arguments.seed, arguments.fault_rate))
    server.start()
    try:
        port = parent_end.recv()
        result = asyncio.run(soak(parent_end, port, arguments.polls, arguments.workers,
                                  arguments.seed))
    finally:
        parent_end.send("stop")
        server.join(10)
        if server.is_alive():
            server.kill()

    print_report("Soak through random faults", report(result, arguments))
    for text, count in result.tally.untyped.items():
        print(f"untyped exception x{count}: {text}")
    must_be_zero = (sum(result.tally.untyped.values()), result.acquired_connections,
                    result.held_slots, result.open_at_server, result.leftover_tasks)
    return 1 if any(must_be_zero) else 0


if __name__ == "__main__":
    sys.exit(main())
