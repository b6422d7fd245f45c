"""The `zoho-merge merge` subcommand: merge one or two records into a master record."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from zoho_merge_async import (
    ChildRecord,
    MergeClient,
    MergeOutcome,
    MergeResult,
    MergeStatus,
    PollPolicy,
)

EXIT_OK = 0
EXIT_MERGE_FAILED = 1


def add_merge_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    epilog: str,
    seconds: Callable[[str], float],
) -> None:
    """Add the `merge` subcommand, with the options of `common` and `seconds` for --timeout."""
    merge = commands.add_parser(
        "merge", parents=[common], help="merge one or two records into a master record",
        description="Merge one or two child records into a master record with Zoho's Merge\n"
                    "Records call. Zoho merges small records at once and schedules a\n"
                    "background job for a child with more than 1000 related records. The\n"
                    "request is sent once and never retried, because a retry could merge twice.",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)
    merge.add_argument("module", metavar="MODULE",
                       help="module API name, such as Leads, Contacts, Accounts or Deals")
    merge.add_argument("master_record_id", metavar="MASTER_RECORD_ID",
                       help="id of the master record the merge keeps")
    merge.add_argument("child_ids", nargs="+", metavar="CHILD_ID",
                       help="one or two ids of records to merge into the master and delete")
    merge.add_argument("--field", action="append", default=[], metavar="CHILD_ID:API_NAME",
                       help="take this field's value from that child record (repeatable; "
                            "default: keep the master record's values)")
    merge.add_argument("--wait", action="store_true",
                       help="if Zoho schedules the merge, wait until its job finishes")
    merge.add_argument("--timeout", type=seconds, metavar="SECONDS",
                       help="with --wait, give up after this many seconds "
                            f"(default: {PollPolicy().timeout:g})")


async def run_merge(client: MergeClient, args: argparse.Namespace) -> int:
    """Send the merge, wait with --wait, print the outcome and return the exit code.

    Raises `ValueError` for an invalid --field, and the errors of the merge
    and wait calls, which the caller turns into exit codes.
    """
    if args.timeout is not None and not args.wait:
        raise ValueError("--timeout applies only to --wait: add --wait, or leave --timeout out")
    children = _children(args.child_ids, args.field)
    status: MergeStatus | None
    if args.wait:
        finished = await client.merge_and_wait(args.module, args.master_record_id, children,
                                               timeout=args.timeout)
        result, status = finished.merge, finished.status
    else:
        result = await client.merge_records(args.module, args.master_record_id, children)
        status = None if result.job_id else MergeStatus.COMPLETED

    _print_result(result, status, as_json=args.json)
    return EXIT_MERGE_FAILED if status is MergeStatus.FAILURE else EXIT_OK


def _children(child_ids: list[str], field_options: list[str]) -> list[ChildRecord]:
    """Attach each --field CHILD_ID:API_NAME to its child record."""
    fields: dict[str, list[str]] = {child: [] for child in child_ids}
    for option in field_options:
        child, separator, api_name = option.partition(":")
        if not separator or not api_name:
            raise ValueError(f"invalid --field {option!r}: use CHILD_ID:API_NAME, such as "
                             f"{child_ids[0]}:Email")
        if child not in fields:
            raise ValueError(f"invalid --field {option!r}: {child} is not one of the child "
                             f"records ({', '.join(child_ids)})")
        fields[child].append(api_name)
    return [ChildRecord(child, fields[child]) for child in child_ids]


def _print_result(result: MergeResult, status: MergeStatus | None, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({
            "outcome": result.outcome.value,
            "module": result.module,
            "master_record_id": result.master_record_id,
            "child_ids": list(result.child_ids),
            "job_id": result.job_id,
            "status": status.value if status else MergeStatus.SCHEDULED.value,
        }))
        return
    children = ", ".join(result.child_ids)
    if result.outcome is MergeOutcome.MERGED:
        print(f"merged {result.module} {children} into {result.master_record_id}")
    elif status is None:
        print(f"{result.job_id} SCHEDULED")
    else:
        print(f"{result.job_id} {status.value}")
