"""`mlops audit ls|verify`: the append-only, hash-chained audit log."""

from __future__ import annotations

import argparse
import json

from ..views import format_time, text_table, to_jsonable
from .common import open_store


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("audit", help="the audit log of registry changes",
                                 description="Every registry change, who made it, when and why.")
    sub = parser.add_subparsers(title="audit commands", metavar="COMMAND", required=True)
    ls = sub.add_parser("ls", help="audit rows, newest first",
                        description="Audit rows, newest first.")
    ls.add_argument("--limit", "-n", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_rows)
    verify = sub.add_parser("verify", help="recompute the hash chain; exit 1 if broken",
                            description="Recompute every row's hash and link; report the "
                                        "first broken row and exit 1 if any.")
    verify.set_defaults(func=verify_chain)


def list_rows(args: argparse.Namespace) -> int:
    _, store = open_store()
    with store:
        rows = store.audit.entries(limit=args.limit)
    if args.json:
        print(json.dumps(to_jsonable(rows), indent=2))
        return 0
    print(text_table(["id", "when", "who", "what", "subject", "why"],
                     [[str(r.id), format_time(r.at), r.actor, r.action, r.subject,
                       (r.reason or "")[:60]] for r in rows]) if rows else "the log is empty")
    return 0


def verify_chain(args: argparse.Namespace) -> int:
    _, store = open_store()
    with store:
        report = store.audit.verify()
    if report.ok:
        print(f"audit chain intact: {report.rows} rows")
        return 0
    print(f"audit chain BROKEN at row {report.first_broken}: {report.problem}")
    return 1
