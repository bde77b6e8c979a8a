"""`mlops audit ls|verify|head|seal`: the append-only audit log, chained by a keyed MAC."""

from __future__ import annotations

import argparse
import json

from .. import capture
from ..errors import NotFound
from ..store.audit import ChainReport, parse_head
from ..views import format_time, text_table, to_jsonable
from .common import open_store, positive


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("audit", help="the audit log of registry changes",
                                 description="Every registry change, who made it, when and why.")
    sub = parser.add_subparsers(title="audit commands", metavar="COMMAND", required=True)
    ls = sub.add_parser("ls", help="audit rows, newest first",
                        description="Audit rows, newest first.")
    ls.add_argument("--limit", "-n", type=positive, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_rows)
    verify = sub.add_parser(
        "verify", help="recompute the keyed hash chain; exit 1 if broken",
        description="Recompute every row's MAC (under the audit key) and link; report the "
                    "first broken row and exit 1 if any. With --head, also check that the "
                    "log still reaches a head you kept elsewhere (`mlops audit head`): a "
                    "shorter log, or another MAC at that row, means rows were cut off or "
                    "rewritten.")
    verify.add_argument("--head", default=None, metavar="ID:MAC",
                        help="a head printed earlier by `mlops audit head`")
    verify.set_defaults(func=verify_chain)
    head = sub.add_parser(
        "head", help="print ID:MAC of the last row, to keep outside the project",
        description="Verify the chain and print the last row's ID:MAC. Keep it somewhere "
                    "the project's writers cannot change (a ticket, a release note, another "
                    "machine); `mlops audit verify --head ID:MAC` later proves no row up to "
                    "it was cut off or rewritten.")
    head.set_defaults(func=print_head)
    seal = sub.add_parser(
        "seal", help="seal rows written before the audit key existed (once, after upgrading)",
        description="Append one keyed row whose MAC covers the log's unkeyed rows (written "
                    "before the audit key existed, hashed with plain BLAKE3). Run it once "
                    "after upgrading, having checked those rows: a seal also covers rows "
                    "someone rewrote before the key existed. Rows the key file records as "
                    "the log at its creation (`mlops init` writes that) are the only ones "
                    "sealed: unkeyed rows written after it, or after a keyed row, are "
                    "refused as forged, and nothing is written.")
    seal.set_defaults(func=seal_chain)


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


def _describe(report: ChainReport) -> str:
    legacy = (f" (rows 1-{report.legacy_rows} predate the audit key and are sealed by the "
              "keyed row after them)" if report.legacy_rows else "")
    return f"audit chain intact: {report.rows} rows{legacy}"


def verify_chain(args: argparse.Namespace) -> int:
    expected = parse_head(args.head) if args.head is not None else None
    _, store = open_store()
    with store:
        report = store.audit.verify(expected)
        moved = store.audit.alias_problems() if report.ok else []
    if report.ok and not moved:
        reaches = f"; reaches the kept head {expected[0]}" if expected else ""
        print(_describe(report) + reaches)
        return 0
    if not report.ok:
        print(f"audit chain BROKEN at row {report.first_broken}: {report.problem}")
        return 1
    print(_describe(report) + ", but the aliases disagree with it:")
    for problem in moved:
        print(f"  {problem} (set by editing the database?)")
    return 1


def print_head(args: argparse.Namespace) -> int:
    _, store = open_store()
    with store:
        report = store.audit.verify()
    if not report.ok:
        print(f"audit chain BROKEN at row {report.first_broken}: {report.problem}; "
              "a head of a broken chain is worth nothing")
        return 1
    if report.head is None:
        raise NotFound("the audit log is empty: there is no head to keep yet")
    print(f"{report.head[0]}:{report.head[1]}")
    return 0


def seal_chain(args: argparse.Namespace) -> int:
    _, store = open_store()
    with store:
        row = store.audit.seal(capture.user())
    print("nothing to seal: the log ends in a keyed row" if row is None
          else f"sealed the unkeyed rows with keyed row {row}")
    return 0
