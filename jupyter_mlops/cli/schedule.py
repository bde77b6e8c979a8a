"""`mlops schedule run|crontab`: run pipelines on their cron schedules."""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

from ..errors import InvalidInput, MlopsError
from ..pipelines.executors import LocalExecutor
from ..pipelines.runner import PipelineRunner
from ..pipelines.schedule import crontab_lines, run_scheduler
from ..pipelines.spec import PipelineSpec, load_spec
from ..project import find_project
from .common import open_store, positive


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("schedule", help="run pipelines on their cron schedules",
                                 description="Run pipelines whose spec has a `schedule`.")
    sub = parser.add_subparsers(title="schedule commands", metavar="COMMAND", required=True)
    run_parser = sub.add_parser(
        "run", help="long-running: run each pipeline when its schedule is due",
        description="Check the specs every --poll seconds and run each pipeline when a "
                    "cron slot has passed since its last scheduled run. Never runs two runs "
                    "of one pipeline at once; after downtime a missed slot runs once.")
    run_parser.add_argument("specs", nargs="*", help="spec files (default: pipelines/*.yaml)")
    run_parser.add_argument("--poll", type=float, default=30.0, help="seconds between checks")
    run_parser.add_argument("--once", action="store_true", help="check once, then exit")
    run_parser.add_argument("--jobs", "-j", type=positive, default=1)
    run_parser.add_argument("--cold", action="store_true",
                            help="start every step's kernel cold (no template process)")
    run_parser.set_defaults(func=run)
    tab = sub.add_parser("crontab", help="the equivalent crontab lines",
                         description="Print one crontab line per scheduled pipeline.")
    tab.add_argument("specs", nargs="*", help="spec files (default: pipelines/*.yaml)")
    tab.set_defaults(func=crontab)


def _spec_paths(patterns: list[str], root: Path) -> list[Path]:
    patterns = patterns or [str(root / "pipelines" / "*.yaml")]
    paths: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern))
        if not matches and not glob.has_magic(pattern):
            raise InvalidInput(f"no pipeline spec at {pattern}")
        paths += [Path(m) for m in matches]
    return paths


def run(args: argparse.Namespace) -> int:
    project, store = open_store()
    paths = _spec_paths(args.specs, project.root)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    problems: dict[Path, str] = {}  # spec -> what was last reported about it

    def load_specs() -> list[PipelineSpec]:
        """Every spec, read again at each poll: one that stops parsing is reported
        (once per new problem) and skipped until it parses again."""
        specs = []
        for path in paths:
            try:
                specs.append(load_spec(path, project.root))
            except MlopsError as exc:  # one broken spec must not stop the others
                if problems.get(path) != str(exc):
                    log(f"skipping {path} until it is fixed: {exc}")
                    problems[path] = str(exc)
                continue
            if problems.pop(path, None) is not None:
                log(f"{path} reads again; scheduling it")
        return specs

    # One executor for every run: its template kernel process (warm steps) is started
    # by the first run that executes a step and reused by the next ones.
    executors: list[LocalExecutor] = []

    def run_pipeline(spec: PipelineSpec) -> None:
        if not executors:
            from ..pipelines.warm import ASKED_COLD

            executors.append(LocalExecutor(cold=ASKED_COLD if args.cold else None))
        outcome = PipelineRunner(spec, project, store, jobs=args.jobs, trigger="schedule",
                                 progress=log, executor=executors[0]).run()
        log(f"{spec.name}: run {outcome.pipeline_run_id} {outcome.status}")

    with store:
        try:
            count = run_scheduler(load_specs, store, run_pipeline, once=args.once,
                                  poll_seconds=args.poll, log=log)
        except KeyboardInterrupt:
            log("scheduler stopped")
            return 130
        finally:
            for executor in executors:
                executor.close()
    log(f"{count} pipeline run(s) started")
    return 0


def crontab(args: argparse.Namespace) -> int:
    project = find_project()
    specs = [load_spec(path, project.root) for path in _spec_paths(args.specs, project.root)]
    lines = crontab_lines(specs)
    if not lines:
        print("# no pipeline has a schedule", file=sys.stderr)
    for line in lines:
        print(line)
    return 0
