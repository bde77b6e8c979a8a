"""`mlops reproduce RUN`: re-execute a recorded run from its record and compare."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from ..errors import MlopsError
from ..reproduce.compare import tolerance
from ..views import to_jsonable
from .common import open_store


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "reproduce", help="re-execute a run from its record and say what differs",
        description="Re-execute RUN from its record alone: its stored notebook or script "
                    "snapshot (not today's file), in a scratch folder holding its recorded "
                    "inputs (each checked by digest, restored from a kept copy when "
                    "changed), with its recorded parameters, as a new run tagged "
                    "mlops.reproduces. Then compare metrics, parameters, dataset and model "
                    "digests. Prints the verdict first: reproduced (exit 0), differs "
                    "(exit 1), could not run (exit 2).",
        epilog="examples: mlops reproduce 42; mlops reproduce churn@production; "
               "mlops reproduce 42 --rtol 1e-6 --in ./repro-42 --keep")
    parser.add_argument("run", help="run id, uuid prefix, or a model (NAME:VERSION, "
                                    "NAME@ALIAS): the run that made it")
    add_reproduce_options(parser)
    parser.set_defaults(func=reproduce_command)


def add_reproduce_options(parser: argparse.ArgumentParser) -> None:
    """The options `mlops reproduce` and `mlops pipeline reproduce` share."""
    parser.add_argument("--rtol", type=tolerance, default=0.0,
                        help="relative tolerance for metrics (default 0: exact)")
    parser.add_argument("--atol", type=tolerance, default=0.0,
                        help="absolute tolerance for metrics (default 0: exact)")
    parser.add_argument("--in", dest="folder", type=Path, default=None, metavar="DIR",
                        help="the scratch folder, new or empty, emptied afterwards (default: "
                             "one in .mlops/cache/reproduce/, removed afterwards)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the scratch folder (inputs, outputs, executed notebooks)")
    parser.add_argument("--strict-env", action="store_true",
                        help="refuse to run when Python or any package differs from the "
                             "run's recorded environment")
    parser.add_argument("--cold", action="store_true",
                        help="start each notebook's kernel as a new process of its own, "
                             "none forked from a template process (see the README's warm "
                             "steps)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def options_of(args: argparse.Namespace):  # noqa: ANN201
    from ..reproduce.compare import Tolerance
    from ..reproduce.run import Options

    return Options(Tolerance(args.rtol, args.atol), args.folder, args.keep, args.strict_env,
                   progress_bar=sys.stderr.isatty(), cold=args.cold)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (`kill PID`, a scheduler's stop) interrupts like Ctrl-C while a
    reproduction runs, so its kernel is shut down and its scratch folder removed instead
    of both being left behind."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def could_not_run(exc: MlopsError, as_json: bool) -> int:
    """A reproduction refused before it began, said as one line, or as JSON with `--json`
    (tools read a verdict either way)."""
    from ..reproduce.run import EXIT_CODES

    print(json.dumps({"verdict": "could not run", "reason": str(exc)}) if as_json
          else f"could not run: {exc}")
    return EXIT_CODES["could not run"]


def reproduce_command(args: argparse.Namespace) -> int:
    from ..reproduce.diff import blob_reader
    from ..reproduce.run import reproduce, reproduction_text

    options = options_of(args)
    try:
        project, store = open_store()
        with store, sigterm_interrupts():
            found = reproduce(project, store, blob_reader(project, store), args.run, options,
                              say=lambda message: print(message, file=sys.stderr))
    except MlopsError as exc:  # no such run, a store that can't be read: it could not run
        return could_not_run(exc, args.json)
    print(json.dumps(to_jsonable(found), indent=2) if args.json else reproduction_text(found))
    return found.exit_code
