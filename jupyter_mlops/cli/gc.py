"""`mlops gc`: remove stale temporaries; report (and with --delete remove) unreferenced blobs."""

from __future__ import annotations

import argparse

from ..errors import InvalidInput
from ..tracking import Tracker


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "gc", help="remove stale temporaries; report unreferenced blobs (--delete removes them)",
        description="Remove temporary files left in .mlops/artifacts/tmp by killed writers "
                    "(older than --older-than and held by no live writer), and report blobs "
                    "that no run, model or pipeline output refers to. With --delete, remove "
                    "those blobs too; a referenced blob is never removed, and the decision "
                    "is taken under the store's write lock, so it is safe while other "
                    "processes record.")
    parser.add_argument("--older-than", default="1h", metavar="AGE",
                        help="only touch files at least this old: 30s, 10m, 1h, 2d "
                             "(default: 1h; 0 for everything no writer holds)")
    parser.add_argument("--delete", action="store_true",
                        help="also delete unreferenced blobs (default: only report them)")
    parser.set_defaults(func=run)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """`0`, `90`, `30s`, `10m`, `1h`, `2d`, `1w` -> seconds."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:], None)
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise InvalidInput(f"--older-than {text[:40]!r} should look like 0, 30s, 10m, 1h or 2d")
    return seconds


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return str(count)


def run(args: argparse.Namespace) -> int:
    older_than = parse_age(args.older_than)
    tracker = Tracker()
    try:
        report = tracker.collect_garbage(older_than=older_than, delete=args.delete)
    finally:
        tracker.close()
    print(f"temporaries: removed {report.temporaries_removed} "
          f"({_size(report.temporary_bytes)}), kept {report.temporaries_busy} "
          "(younger than --older-than or held by a live writer)")
    print(f"unreferenced blobs: {report.unreferenced} ({_size(report.unreferenced_bytes)})")
    if args.delete:
        print(f"deleted: {report.deleted} ({_size(report.deleted_bytes)})")
    elif report.unreferenced:
        print("run `mlops gc --delete` to delete them")
    return 0
