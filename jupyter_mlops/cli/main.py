"""Entry point of the `mlops` command: builds the parser, maps errors to exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import MlopsError
from ..store.connection import is_database_error
from . import (
    audit,
    dashboard,
    gc,
    init,
    login,
    models,
    monitor,
    pipeline,
    push,
    release,
    reproduce,
    run_notebook,
    runs,
    schedule,
    serve,
    server,
    sync,
    verify,
)

COMMAND_GROUPS = (init, runs, run_notebook, reproduce, pipeline, schedule, models, release, audit,
                  serve, server, monitor, dashboard, verify, gc, login, sync, push)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops",
        description="Track, compare and verify the runs of a jupyter-mlops project. "
                    "The project is the nearest folder holding .mlops/ (MLOPS_HOME overrides).",
    )
    parser.add_argument("--version", action="version", version="%(prog)s 0.1.0")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MlopsError as exc:
        print(f"mlops: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `mlops ... | head -1`: the reader has what it wanted
        _silence_stdout()
        return 0
    except Exception as exc:  # a fault `write()` does not translate (a read, a bad file)
        if not is_database_error(exc):
            raise
        text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        print(f"mlops: error: the store's database failed: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mlops: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail again."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
