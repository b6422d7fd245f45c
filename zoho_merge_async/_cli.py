"""The `zoho-merge` command: show, wait for and demonstrate Zoho CRM merge jobs.

Subcommands:

    zoho-merge status MODULE MASTER_RECORD_ID [--job-id ID] [--json]
    zoho-merge wait MODULE MASTER_RECORD_ID [JOB_ID] [--timeout SECONDS] [--json]
                    [--no-progress]
    zoho-merge merge MODULE MASTER_RECORD_ID CHILD_ID [CHILD_ID] [--field CHILD_ID:API_NAME]
                     [--wait] [--timeout SECONDS] [--json]
    zoho-merge demo [--jobs N] [--records M] [--seed S] [--plain]

`status`, `wait` and `merge` read the access token from the environment variable
ZOHO_ACCESS_TOKEN (or the one named by --access-token-env), never from the
command line, where any user could read it in the process list. Without an
access token they refresh tokens from ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET and
ZOHO_REFRESH_TOKEN, as the help epilog describes.
`demo` runs against a fake Zoho server on 127.0.0.1 and needs no token.

The exit codes are listed in `_EPILOG`, which every `--help` prints.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from zoho_merge_async import (
    DEFAULT_API_DOMAIN,
    MergeClient,
    MergeJob,
    MergeStatus,
    MergeTimeoutError,
    PollPolicy,
    RefreshTokenProvider,
    ZohoError,
    __version__,
    wait_for_merge,
)
from zoho_merge_async._cli_auth import credentials_from_environment
from zoho_merge_async._cli_merge import add_merge_parser, run_merge
from zoho_merge_async._cli_progress import WaitProgress
from zoho_merge_async._validation import API_VERSIONS

EXIT_OK = 0
EXIT_MERGE_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_ERROR = 4
EXIT_INTERRUPTED = 130

TOKEN_ENV = "ZOHO_ACCESS_TOKEN"
API_DOMAIN_ENV = "ZOHO_API_DOMAIN"

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN_OPTION = re.compile(r"--(access-token|token|client-secret|refresh-token)(=.*)?",
                           re.DOTALL)

_DEFAULT_POLL = PollPolicy()

_EPILOG = """\
exit codes:
  0    the merge completed, or the status was printed
  1    the merge ended in FAILURE (demo: a job did not end as scripted)
  2    invalid usage or input, including a missing access token
  3    the wait timed out
  4    any other error from Zoho or the connection
  130  interrupted (Ctrl+C)

The access token is read from the environment variable ZOHO_ACCESS_TOKEN
(or the one named by --access-token-env), never from the command line.
Without it, tokens are refreshed from ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET and
ZOHO_REFRESH_TOKEN at the accounts server of ZOHO_DATA_CENTRE (US, EU, IN, AU,
JP, CN, CA or SA; default US) or at ZOHO_ACCOUNTS_URL."""


def positive_seconds(text: str) -> float:
    """Parse a positive, finite number of seconds for argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"invalid number of seconds {text!r}: give a positive, finite number")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Build the parser for all subcommands."""
    parser = argparse.ArgumentParser(
        prog="zoho-merge",
        description="Start, show and wait for Zoho CRM record-merge jobs.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = _common_options()
    _add_status_parser(commands, common)
    _add_wait_parser(commands, common)
    add_merge_parser(commands, common, _EPILOG, positive_seconds)
    _add_demo_parser(commands)
    return parser


def _add_status_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                       common: argparse.ArgumentParser) -> None:
    status = commands.add_parser(
        "status", parents=[common], help="print the status of a record's merge jobs",
        description="Print each merge job of a master record as '<job_id> <STATUS>'.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)
    _add_record_arguments(status)
    status.add_argument("--job-id", help="print only this merge job (default: all jobs)")


def _add_wait_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                     common: argparse.ArgumentParser) -> None:
    wait = commands.add_parser(
        "wait", parents=[common], help="wait until a merge job finishes",
        description="Poll a merge job until it is COMPLETED or FAILURE and print it.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)
    _add_record_arguments(wait)
    wait.add_argument("job_id", nargs="?", metavar="JOB_ID",
                      help="merge job to wait for (default: the record's only job)")
    wait.add_argument("--timeout", type=positive_seconds, metavar="SECONDS",
                      help=f"give up after this many seconds (default: "
                           f"{_DEFAULT_POLL.timeout:g})")
    wait.add_argument("--poll-interval", type=positive_seconds,
                      default=_DEFAULT_POLL.initial_delay, metavar="SECONDS",
                      help=f"delay in seconds after the first poll; it grows "
                           f"{_DEFAULT_POLL.multiplier:g} times per poll up to "
                           f"{_DEFAULT_POLL.max_delay:g} s or this value, whichever is larger "
                           f"(default: {_DEFAULT_POLL.initial_delay:g}); a value below "
                           f"{_DEFAULT_POLL.min_interval:g} s also lowers the minimum interval "
                           "between polls")
    wait.add_argument("--no-progress", action="store_true",
                      help="print no progress on stderr (default: a live line on a terminal, "
                           "else one line per status change)")


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument(
        "--api-domain", metavar="URL",
        help=f"scheme and host of the account's data centre (default: ${API_DOMAIN_ENV}, "
             f"else {DEFAULT_API_DOMAIN})")
    common.add_argument("--api-version", choices=API_VERSIONS, default="v7",
                        help="Zoho CRM API version (default: v7)")
    common.add_argument(
        "--access-token-env", type=_variable_name, default=TOKEN_ENV, metavar="NAME",
        help=f"environment variable that contains the access token (default: {TOKEN_ENV})")
    common.add_argument("--json", action="store_true",
                        help="print the result as JSON instead of text lines")
    common.add_argument("-v", "--verbose", action="store_true",
                        help="log polls and retries to stderr")
    return common


def _add_record_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("module", metavar="MODULE",
                        help="module API name, such as Leads, Contacts, Accounts or Deals")
    parser.add_argument("master_record_id", metavar="MASTER_RECORD_ID",
                        help="id of the master record the merge keeps")


def _add_demo_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo", help="start and wait for many merges on a local fake Zoho server",
        description="Start a fake Zoho server on 127.0.0.1 and send merges to it: each master\n"
                    "record gets one merge that Zoho schedules as a job, and the other merges\n"
                    "are done at once. Then wait for all jobs at once, with live progress and\n"
                    "a summary. About 10% of the merges are jobs that end in FAILURE, and\n"
                    "about 2% are jobs that return INTERNAL_ERROR for one status request,\n"
                    "which the client retries.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)
    demo.add_argument("--jobs", type=_positive_int, default=300, metavar="N",
                      help="merges to send (default: 300)")
    demo.add_argument("--records", type=_positive_int, default=120, metavar="M",
                      help="master records, at most N; each gets one scheduled merge job and "
                           "the other merges are done at once (default: 120)")
    demo.add_argument("--seed", type=int, metavar="S",
                      help="seed of the random job scripts (default: a random seed, printed)")
    demo.add_argument("--plain", action="store_true",
                      help="print a progress line every second instead of one updating line")


def _variable_name(text: str) -> str:
    # The message leaves out `text`, in case someone passed the token itself.
    if not _VARIABLE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            "invalid environment variable name: use letters, digits and underscores, "
            "not starting with a digit, such as ZOHO_ACCESS_TOKEN")
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid whole number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {value}: give 1 or more")
    return value


async def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: `sys.argv[1:]`) and return the exit code.

    `main` wraps this in `asyncio.run`. Tests await it in their own event loop.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(_TOKEN_OPTION.fullmatch(argument) for argument in argv):
        # Checked before argparse, whose "unrecognized arguments" message would echo the token.
        _print_error(f"tokens and secrets cannot be given on the command line, where other "
                     f"users can read them in the process list; set {TOKEN_ENV} instead "
                     "(or the variable named by --access-token-env), or ZOHO_CLIENT_ID, "
                     "ZOHO_CLIENT_SECRET and ZOHO_REFRESH_TOKEN")
        return EXIT_USAGE

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "demo" and args.records > args.jobs:
            parser.error(f"argument --records: invalid value {args.records}: give at most "
                         f"--jobs ({args.jobs}), because every record gets at least one merge")
    except SystemExit as exc:
        # argparse exits after --help, --version or a usage error; keep its status.
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE

    if args.command == "demo":
        # Imported here, so that the other commands do not import the fake server and aiohttp.web.
        from zoho_merge_async._demo import run_demo

        return await run_demo(jobs=args.jobs, records=args.records, seed=args.seed,
                              plain=args.plain)

    with _log_to_stderr(args.verbose):
        try:
            return await _run_api_command(args)
        except MergeTimeoutError as exc:
            _print_error(str(exc))
            return EXIT_TIMEOUT
        except ZohoError as exc:
            _print_error(str(exc))
            return EXIT_ERROR
        except ValueError as exc:
            _print_error(str(exc))
            return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `zoho-merge` command and return its exit code."""
    try:
        return asyncio.run(run(argv))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


async def _run_api_command(args: argparse.Namespace) -> int:
    # Without a chosen domain, a refreshed token's own api_domain is used (else US).
    api_domain = _chosen_api_domain(args.api_domain, os.environ.get(API_DOMAIN_ENV))
    credentials = credentials_from_environment(os.environ, args.access_token_env)

    try:
        async with MergeClient(credentials, api_domain=api_domain,
                               api_version=args.api_version, poll=_poll_policy(args)) as client:
            if args.command == "merge":
                return await run_merge(client, args)
            if args.command == "status":
                return await _show_status(client, args)
            return await _wait(client, args)
    finally:
        if isinstance(credentials, RefreshTokenProvider):
            await credentials.aclose()


def _chosen_api_domain(option: str | None, variable: str | None) -> str | None:
    """Return --api-domain, else $ZOHO_API_DOMAIN, else None.

    Raises `ValueError` for an empty value, which would otherwise fall back
    to the token's or the US API domain, not what a caller who set it meant.
    """
    if option is not None:
        if not option.strip():
            raise ValueError(f"invalid --api-domain {option!r}: give scheme and host, such as "
                             "https://www.zohoapis.eu, or leave the option out")
        return option
    if variable is not None:
        if not variable.strip():
            raise ValueError(f"invalid {API_DOMAIN_ENV} {variable!r}: set it to scheme and "
                             "host, such as https://www.zohoapis.eu, or unset it")
        return variable
    return None


def _poll_policy(args: argparse.Namespace) -> PollPolicy:
    if args.command != "wait":
        return _DEFAULT_POLL
    interval: float = args.poll_interval
    return dataclasses.replace(_DEFAULT_POLL, initial_delay=interval,
                               max_delay=max(_DEFAULT_POLL.max_delay, interval),
                               min_interval=min(_DEFAULT_POLL.min_interval, interval))


async def _show_status(client: MergeClient, args: argparse.Namespace) -> int:
    if args.job_id is not None:
        jobs = [await client.get_merge_status(args.module, args.master_record_id, args.job_id)]
    else:
        jobs = await client.get_merge_jobs(args.module, args.master_record_id)
        if not jobs:
            print(f"no merge jobs found for {args.module} record {args.master_record_id}",
                  file=sys.stderr)
    _print_jobs(jobs, as_json=args.json)
    return EXIT_OK


async def _wait(client: MergeClient, args: argparse.Namespace) -> int:
    if args.no_progress:
        job = await wait_for_merge(client, args.module, args.master_record_id, args.job_id,
                                   timeout=args.timeout)
    else:
        progress = WaitProgress(sys.stderr, live=sys.stderr.isatty())
        async with progress.running():
            job = await wait_for_merge(client, args.module, args.master_record_id,
                                       args.job_id, timeout=args.timeout, on_status=progress)
    if args.json:
        print(json.dumps(_job_as_dict(job)))
    else:
        _print_jobs([job], as_json=False)
    return EXIT_MERGE_FAILED if job.status is MergeStatus.FAILURE else EXIT_OK


def _print_jobs(jobs: list[MergeJob], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps([_job_as_dict(job) for job in jobs]))
        return
    for job in jobs:
        print(f"{job.job_id} {job.status.value}")


def _job_as_dict(job: MergeJob) -> dict[str, str]:
    return {"job_id": job.job_id, "status": job.status.value}


def _print_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


@contextmanager
def _log_to_stderr(verbose: bool) -> Iterator[None]:
    """Send the SDK's DEBUG log to stderr while the block runs, if `verbose`."""
    if not verbose:
        yield
        return
    logger = logging.getLogger("zoho_merge_async")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
