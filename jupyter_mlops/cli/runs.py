"""`mlops runs ls|show|env|diff|compare`: list, inspect, explain and compare recorded runs."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import NotFound
from ..inspection import compare_runs, describe_run
from ..store.filters import ATTRIBUTES
from ..views import comparison_text, run_detail_text, runs_text, to_jsonable
from .common import non_negative, open_store, positive

FILTER_HELP = (
    "filter expression, e.g. \"metrics.acc > 0.9 and params.C = '0.5'\"; fields: "
    "metrics.KEY, params.KEY, tags.KEY, " + ", ".join(sorted(ATTRIBUTES))
    + "; operators: = != < <= > >= like; join with and/or/not and parentheses"
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("runs", help="list, show and compare runs",
                                 description="List, show and compare recorded runs.")
    sub = parser.add_subparsers(title="runs commands", metavar="COMMAND", required=True)

    ls_parser = sub.add_parser("ls", help="list runs, newest first",
                        description="List runs, newest first.")
    ls_parser.add_argument("--filter", "-f", default=None, help=FILTER_HELP)
    ls_parser.add_argument("--limit", "-n", type=positive, default=20,
                    help="show at most N runs (default: 20)")
    ls_parser.add_argument("--offset", type=non_negative, default=0,
                           help="skip the first N matches")
    ls_parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls_parser.set_defaults(func=list_runs)

    show_parser = sub.add_parser("show", help="everything recorded about one run",
                          description="Everything recorded about one run.")
    show_parser.add_argument("run", help="run id (e.g. 12) or uuid prefix")
    show_parser.add_argument("--json", action="store_true", help="print JSON")
    show_parser.add_argument("--packages", action="store_true", help="list every package version")
    show_parser.set_defaults(func=show_run)

    env_parser = sub.add_parser(
        "env", help="the run's environment as a pinned requirements.txt",
        description="Print the packages and versions recorded with a run, pinned, so "
                    "`pip install -r` rebuilds its environment (in a venv of the Python "
                    "version named in the first line). --diff lists what differs here "
                    "instead, and exits 1 when anything does.")
    env_parser.add_argument("run", help="run id (e.g. 12) or uuid prefix")
    env_parser.add_argument("--diff", action="store_true",
                            help="list the differences from this environment")
    env_parser.set_defaults(func=run_env)

    diff_parser = sub.add_parser(
        "diff", help="why two runs differ: inputs first, then results, and the code diff",
        description="Explain two runs: what differs in their data (a changed dataset's "
                    "row counts and columns added, removed or retyped; its digests), "
                    "parameters, code (digest, git commit) and packages, then in their "
                    "metrics, and the unified diff of their code cells from the snapshots "
                    "the runs stored (not today's files).")
    diff_parser.add_argument("a", metavar="RUN_A", help="run id or uuid prefix")
    diff_parser.add_argument("b", metavar="RUN_B", help="run id or uuid prefix")
    diff_parser.add_argument("--json", action="store_true", help="print JSON")
    diff_parser.set_defaults(func=diff)

    compare_parser = sub.add_parser("compare", help="runs side by side, differences marked",
                             description="Runs side by side: params, metrics, data, "
                                         "environment and code; rows that differ are marked.")
    compare_parser.add_argument("runs", nargs="+", metavar="RUN", help="two or more run ids")
    compare_parser.add_argument("--json", action="store_true", help="print JSON")
    compare_parser.set_defaults(func=compare)


def list_runs(args: argparse.Namespace) -> int:
    with open_store()[1] as store:
        runs = store.runs.search(args.filter, limit=args.limit, offset=args.offset)
    print(json.dumps(to_jsonable(runs), indent=2) if args.json else runs_text(runs))
    return 0


def show_run(args: argparse.Namespace) -> int:
    with open_store()[1] as store:
        detail = describe_run(store, args.run)
    if args.json:
        print(json.dumps(to_jsonable(detail), indent=2))
    else:
        print(run_detail_text(detail, packages=args.packages))
    return 0


def run_env(args: argparse.Namespace) -> int:
    from ..capture import environment
    from ..reproduce.environment import differences, requirements

    with open_store()[1] as store:
        run = store.runs.resolve(args.run)
        recorded = store.environments.get(run.env_digest) if run.env_digest else None
    if recorded is None:
        raise NotFound(f"run {run.id} has no recorded environment (a pipeline step's run "
                       "records its step's; runs recorded before environments were kept, "
                       "or through a team server before 2026-11-29, have none)")
    if not args.diff:
        sys.stdout.write(requirements(run, recorded))
        return 0
    found = differences(recorded, environment())
    if not found:
        print(f"run {run.id}'s environment is this one ({recorded.digest})")
        return 0
    print(f"{len(found)} difference(s) from run {run.id}'s environment:")
    for difference in found:
        print(f"  {difference.describe()}")
    return 1


def diff(args: argparse.Namespace) -> int:
    from ..reproduce.diff import blob_reader, diff_runs, diff_text

    project, store = open_store()
    with store:
        found = diff_runs(store, blob_reader(project, store), args.a, args.b)
    print(json.dumps(to_jsonable(found), indent=2) if args.json else diff_text(found))
    return 0


def compare(args: argparse.Namespace) -> int:
    with open_store()[1] as store:
        comparison = compare_runs(store, args.runs)
    print(json.dumps(to_jsonable(comparison), indent=2) if args.json
          else comparison_text(comparison))
    return 0
