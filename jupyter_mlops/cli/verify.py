"""`mlops verify`: re-hash every stored artifact."""

from __future__ import annotations

import argparse
import sys

from ..tracking import Tracker


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "verify", help="re-hash every stored artifact; exit 1 on any mismatch",
        description="Re-hash every artifact in .mlops/artifacts and compare with its "
                    "recorded digest, and look for symbolic links planted in the store "
                    "(never followed). Prints each problem; exits 1 if there is any.")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    tracker = Tracker()
    show_progress = not args.quiet and sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show_progress:
            print(f"\rverifying {done}/{total}", end="", file=sys.stderr, flush=True)

    try:
        problems = tracker.verify(progress)
        count = sum(1 for _ in tracker.store.artifacts.all_digests())
    finally:
        tracker.close()
    if show_progress:
        print(file=sys.stderr)
    for digest, problem in problems:
        print(f"BAD {digest}: {problem}")
    print(f"{count} artifacts checked, {len(problems)} bad")
    return 1 if problems else 0
