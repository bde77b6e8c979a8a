"""`mlops pipeline run|show|runs`: notebook pipelines."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import InvalidInput
from ..pipelines.executors import Executor
from ..pipelines.runner import PipelineRunner
from ..pipelines.spec import load_spec
from ..store.records import PipelineRun
from ..views import (
    format_duration,
    format_time,
    step_failure_lines,
    step_failure_summary,
    text_table,
    to_jsonable,
)
from .common import open_store, positive
from .reproduce import add_reproduce_options, could_not_run, options_of, sigterm_interrupts


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "pipeline", help="run, inspect and list notebook pipelines",
        description="Run, inspect and list notebook pipelines (YAML specs chaining "
                    "parameterized notebooks).")
    sub = parser.add_subparsers(title="pipeline commands", metavar="COMMAND", required=True)

    run_parser = sub.add_parser(
        "run", help="run a pipeline; unchanged steps are cached",
        description="Run the pipeline in SPEC. A step whose notebook code, parameters, "
                    "inputs, upstream steps and environment are unchanged is reused "
                    "(cached). Exits 1 when a step fails, 130 when interrupted. In a "
                    "team-mode project the steps' records, the pipeline run and the step "
                    "cache go to the team server (a token with the 'pipeline' permission).")
    run_parser.add_argument("spec", help="pipeline spec, e.g. pipelines/train.yaml")
    run_parser.add_argument("-p", "--param", action="append", default=[],
                            metavar="[STEP.]NAME=VALUE",
                            help="override a pipeline parameter, or one step's (repeatable)")
    run_parser.add_argument("--jobs", "-j", type=positive, default=1,
                            help="independent steps to run at once (default: 1)")
    run_parser.add_argument("--force", action="append", default=[], metavar="STEP|all",
                            help="execute STEP even if cached (repeatable; `all` for every step)")
    run_parser.add_argument("--executor", choices=("local", "dask"), default="local",
                            help="local kernels (default) or a Dask distributed cluster")
    run_parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                            help="Dask scheduler address (default: a LocalCluster)")
    run_parser.add_argument("--trigger", choices=("manual", "schedule"), default="manual",
                            help=argparse.SUPPRESS)
    run_parser.add_argument("--cold", action="store_true",
                            help="start every step's kernel cold (no template process)")
    run_parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    run_parser.set_defaults(func=run)

    reproduce_parser = sub.add_parser(
        "reproduce", help="re-execute every step of a pipeline run and compare",
        description="Re-execute every step of pipeline run RUN from its record (each "
                    "step's stored notebook snapshot and recorded parameters, ignoring the "
                    "step cache), in order, in one scratch folder: a step reads the files "
                    "the steps before it wrote there, each checked against the digests the "
                    "original step read. Reports each step; exits 0 when every step "
                    "reproduced, 1 when one differs, 2 when one could not run.")
    reproduce_parser.add_argument("pipeline_run", type=positive, metavar="RUN",
                                  help="pipeline run id (`mlops pipeline runs`)")
    add_reproduce_options(reproduce_parser)
    reproduce_parser.set_defaults(func=reproduce_pipeline_command)

    show_parser = sub.add_parser(
        "show", help="the DAG and what would run or be cached",
        description="Show the steps in order, what each needs, and whether it would run or "
                    "be reused from the cache. Runs nothing.")
    show_parser.add_argument("spec")
    show_parser.add_argument("-p", "--param", action="append", default=[],
                             metavar="[STEP.]NAME=VALUE")
    show_parser.add_argument("--force", action="append", default=[], metavar="STEP|all")
    show_parser.add_argument("--json", action="store_true", help="print JSON")
    show_parser.set_defaults(func=show)

    runs_parser = sub.add_parser("runs", help="past pipeline runs with step status",
                                 description="Past pipeline runs, newest first, with the "
                                             "status of each step and why a step failed; "
                                             "with RUN_ID, that run's steps, each failure in "
                                             "full (cell, source, traceback) and warnings.")
    runs_parser.add_argument("run", nargs="?", type=positive, default=None, metavar="RUN_ID",
                             help="show this pipeline run's steps in detail")
    runs_parser.add_argument("--name", default=None, help="only this pipeline")
    runs_parser.add_argument("--limit", "-n", type=positive, default=20)
    runs_parser.add_argument("--json", action="store_true", help="print JSON")
    runs_parser.set_defaults(func=list_runs)


def make_executor(name: str, scheduler: str | None) -> Executor | None:
    if name == "dask":
        from ..pipelines.executors import DaskExecutor

        return DaskExecutor(scheduler)
    if scheduler:
        raise InvalidInput("--scheduler goes with --executor dask")
    return None


def run(args: argparse.Namespace) -> int:
    project, store = open_store()
    executor = None
    try:
        spec = load_spec(args.spec, project.root)
        executor = make_executor(args.executor, args.scheduler)
        runner = PipelineRunner(spec, project, store, overrides=args.param, jobs=args.jobs,
                                force=args.force, executor=executor, trigger=args.trigger,
                                cold=args.cold,
                                progress=lambda line: print(line, file=sys.stderr, flush=True))
        outcome = runner.run()
    finally:
        if executor is not None:
            executor.close()
        store.close()
    if args.json:
        print(json.dumps(to_jsonable(outcome), indent=2))
    else:
        rows = [[o.step, o.status, "" if o.run_id is None else str(o.run_id),
                 f"{o.seconds:.1f}s" if o.seconds else ""] for o in outcome.steps.values()]
        print(text_table(["step", "status", "run", "time"], rows))
        print(f"\npipeline {outcome.name!r} run {outcome.pipeline_run_id}: {outcome.status}")
    if not outcome.ok:
        failed = [o for o in outcome.steps.values() if o.status == "failed"]
        for o in failed:
            print(f"mlops: error: {o.error}", file=sys.stderr)
        return 1
    return 0


def show(args: argparse.Namespace) -> int:
    project, store = open_store()
    with store:
        spec = load_spec(args.spec, project.root)
        plan = PipelineRunner(spec, project, store, overrides=args.param,
                              force=args.force).plan()
    if args.json:
        print(json.dumps([{"step": p.step.name, "needs": list(p.step.needs),
                           "notebook": str(p.step.notebook.relative_to(spec.root)),
                           "params": p.params, "key": p.key,
                           "would": _would(p), "cached_run": p.cached.run_id if p.cached else None}
                          for p in plan], indent=2, default=str))
        return 0
    print(f"pipeline {spec.name!r} ({spec.path})" + (f", schedule {spec.schedule}"
                                                     if spec.schedule else ""))
    rows = [[p.step.name, ", ".join(p.step.needs), str(p.step.notebook.relative_to(spec.root)),
             _would(p), p.key.split(":")[1][:12]] for p in plan]
    print(text_table(["step", "needs", "notebook", "would", "key"], rows))
    return 0


def _would(planned) -> str:  # noqa: ANN001
    if planned.forced:
        return "run (forced)"
    if planned.cached is not None:
        return f"cached (run {planned.cached.run_id})"
    return "run"


def list_runs(args: argparse.Namespace) -> int:
    _, store = open_store()
    with store:
        if args.run is not None:
            one = store.pipelines.get(args.run)
            print(json.dumps(to_jsonable(one), indent=2) if args.json else pipeline_run_text(one))
            return 0
        runs = store.pipelines.recent(args.name, limit=args.limit)
    if args.json:
        print(json.dumps(to_jsonable(runs), indent=2))
        return 0
    if not runs:
        print("no pipeline runs")
        return 0
    rows = [[str(r.id), r.name, r.status, r.trigger, format_time(r.started_at),
             format_duration(None if r.ended_at is None else r.ended_at - r.started_at),
             " ".join(f"{s.step}:{s.status}" for s in r.steps)] for r in runs]
    print(text_table(["id", "pipeline", "status", "trigger", "started", "duration", "steps"],
                     rows))
    notes = [f"  run {r.id} {s.step}: {_why(s)}" for r in runs for s in r.steps
             if s.status == "failed"]
    notes += [f"  run {r.id} {s.step}: warning: {w}" for r in runs for s in r.steps
              for w in s.warnings]
    if notes:
        print("\nfailures and warnings (`mlops pipeline runs RUN_ID` for the cell, its source "
              "and the traceback):")
        print("\n".join(notes))
    return 0


def _why(step) -> str:  # noqa: ANN001 - a StepRun
    return step_failure_summary(step.failure) if step.failure else (step.error or "failed")


def pipeline_run_text(run: PipelineRun) -> str:
    """One pipeline run: its steps, then each failure in full and each warning."""
    lines = [f"pipeline {run.name!r} run {run.id}: {run.status} ({run.trigger}), started "
             f"{format_time(run.started_at)}, took "
             f"{format_duration(None if run.ended_at is None else run.ended_at - run.started_at)}"
             f"\nspec: {run.spec_path}", ""]
    rows = [[s.step, s.status, "" if s.run_id is None else str(s.run_id),
             format_duration(None if s.ended_at is None or s.started_at is None
                             else s.ended_at - s.started_at),
             f"reused step run {s.cached_from}" if s.cached_from else (s.notebook_path or "")]
            for s in run.steps]
    lines.append(text_table(["step", "status", "run", "time", "executed notebook"], rows))
    for step in run.steps:
        if step.status == "failed":
            detail = step_failure_lines(step.failure) if step.failure else [step.error or ""]
            lines += ["", f"step {step.step!r} failed:", *("  " + line for line in detail)]
        elif step.status == "skipped" and step.error:
            lines += ["", f"step {step.step!r} skipped: {step.error}"]
        if step.warnings:
            lines += ["", f"step {step.step!r} warnings:",
                      *(f"  - {warning}" for warning in step.warnings)]
    return "\n".join(lines)


def reproduce_pipeline_command(args: argparse.Namespace) -> int:
    from ..errors import MlopsError
    from ..reproduce.diff import blob_reader
    from ..reproduce.pipeline import pipeline_reproduction_text, reproduce_pipeline

    try:
        project, store = open_store()
        with store, sigterm_interrupts():
            found = reproduce_pipeline(project, store, blob_reader(project, store),
                                       args.pipeline_run, options_of(args),
                                       say=lambda message: print(message, file=sys.stderr))
    except MlopsError as exc:  # no such pipeline run, --in not empty, a store not readable
        return could_not_run(exc, args.json)
    print(json.dumps(to_jsonable(found), indent=2) if args.json
          else pipeline_reproduction_text(found))
    return found.exit_code
