"""`mlops sync` and `mlops status`: the records a team server has not taken yet."""

from __future__ import annotations

import argparse

from ..project import find_project


def add_parser(commands: argparse._SubParsersAction) -> None:
    sync = commands.add_parser(
        "sync", help="send the records spooled while the team server was unreachable",
        description="Send .mlops/spool/ to the project's team server, in order. A record the "
                    "server already has is skipped by it, so running this twice (or while "
                    "a notebook sends them too) adds nothing. Batches the server refuses are "
                    "set aside in .mlops/spool/uid-N/rejected.jsonl with its reason.")
    sync.set_defaults(func=run_sync)
    status = commands.add_parser(
        "status", help="the team server, who you are there, and what is pending",
        description="Show the project's team server, the user and roles its token maps to, "
                    "and the records per run that wait in .mlops/spool/.")
    status.set_defaults(func=run_status)


def run_sync(args: argparse.Namespace) -> int:
    from ..remote.session import sync
    from ..remote.spool import Spool

    project = find_project()
    report = sync(project)
    for batch in report.sent:
        print(f"sent {len(batch.records)} records of run {batch.run_id or batch.stream}")
    for batch, reason in report.rejected:
        print(f"refused {len(batch.records)} records of run {batch.run_id or batch.stream}: "
              f"{reason}")
    if not report.sent and not report.rejected and not report.left:
        print("nothing to send")
    if report.left:
        why = f" ({report.stopped_by})" if report.stopped_by else ""
        print(f"{report.left} batches left in {Spool.for_project(project).pending_path}{why}")
        return 1
    return 1 if report.rejected else 0


def run_status(args: argparse.Namespace) -> int:
    from ..remote.session import status

    found = status(find_project())
    print(f"server: {found.url}")
    if found.who is not None:
        roles = ", ".join(found.who.get("roles") or []) or "none"
        print(f"user: {found.who['user']} (roles: {roles})")
    else:
        print(f"user: unknown ({found.problem})")
    if not found.pending:
        print("pending: nothing")
    for stream, (run_id, count) in sorted(found.pending.items()):
        label = f"run {run_id}" if run_id is not None else f"run {stream}"
        print(f"pending: {count} records of {label}")
    if found.staged_blobs:
        print(f"pending: {found.staged_blobs} files to upload")
    if found.rejected:
        print(f"refused: {found.rejected} batches, kept in {found.rejected_path}")
    return 0 if found.who is not None else 1
