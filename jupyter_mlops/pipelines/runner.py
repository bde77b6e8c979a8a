"""Running a pipeline: the DAG in order, in parallel up to `jobs`, cached, recorded.

Only the coordinating thread touches the store. Worker threads (or Dask
workers) only execute notebooks; their results come back here to be ingested.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from .. import capture
from ..artifacts import ArtifactStore
from ..datasets import describe_path
from ..errors import InvalidInput, MlopsError
from ..hashing import StatCache, digest_file
from ..monitoring.predlog import PredictionLog
from ..project import Project, make_dirs, write_new_file
from ..recorders import StoreRecorder
from ..store import Store
from ..store.records import StepRun
from ..store.runs import NewRun
from ..tracking import format_param
from . import references
from .cache import input_digests, step_key
from .execution import (
    StepResult,
    StepTask,
    check_step_result,
    read_staged,
    render_report,
    warm_up_reports,
)
from .executors import Executor, LocalExecutor
from .ingest import ingest
from .spec import PipelineSpec, StepSpec, declared_parameters


@dataclass(frozen=True)
class PlannedStep:
    step: StepSpec
    params: Mapping[str, Any]  # merged, references unresolved
    key: str
    cached: StepRun | None  # the execution that would be reused, if any
    forced: bool


@dataclass
class StepOutcome:
    step: str
    status: str  # finished | cached | failed | skipped | killed
    run_id: int | None = None
    error: str | None = None
    seconds: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)
    notebook_path: str | None = None


@dataclass
class PipelineOutcome:
    pipeline_run_id: int
    name: str
    status: str
    steps: dict[str, StepOutcome]

    @property
    def ok(self) -> bool:
        return self.status == "finished"


def parse_overrides(items: list[str], spec: PipelineSpec
                    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """`-p seed=3 -p train.C=1.0` -> (pipeline params, {step: params}); values are YAML."""
    import yaml

    pipeline: dict[str, Any] = {}
    steps: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, raw = item.partition("=")
        target = target.strip()
        if not sep or not target:
            raise InvalidInput(f"parameter {item!r} should look like NAME=VALUE or "
                               "STEP.NAME=VALUE")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        step, dot, name = target.rpartition(".")
        if dot:
            if step not in spec.steps:
                raise InvalidInput(f"-p {item}: pipeline {spec.name!r} has no step {step!r} "
                                   f"(steps: {', '.join(spec.steps)})")
            if not name.isidentifier():
                raise InvalidInput(f"-p {item}: {name!r} is not a parameter name")
            steps.setdefault(step, {})[name] = value
        else:
            if name not in spec.params:
                raise InvalidInput(f"-p {item}: pipeline {spec.name!r} declares no parameter "
                                   f"{name!r} (declared: {', '.join(spec.params) or 'none'}; "
                                   "use STEP.NAME=VALUE for a step's own parameter)")
            pipeline[name] = value
    return pipeline, steps


class PipelineRunner:
    def __init__(self, spec: PipelineSpec, project: Project, store: Store, *,
                 overrides: list[str] | None = None, jobs: int = 1,
                 force: list[str] | None = None, executor: Executor | None = None,
                 trigger: str = "manual", progress: Callable[[str], None] | None = None) -> None:
        if jobs < 1:
            raise InvalidInput(f"--jobs must be at least 1, got {jobs}")
        forced = set(force or ())
        unknown = forced - set(spec.steps) - {"all"}
        if unknown:
            raise InvalidInput(f"--force: pipeline {spec.name!r} has no step "
                               f"{', '.join(sorted(unknown))} (steps: {', '.join(spec.steps)})")
        self.spec = spec
        self.project = project
        self.store = store
        self.jobs = jobs
        self.forced = set(spec.steps) if "all" in forced else forced
        self.pipeline_overrides, self.step_overrides = parse_overrides(overrides or [], spec)
        self.executor = executor
        self.trigger = trigger
        self.progress = progress or (lambda message: None)
        self.artifacts = ArtifactStore(project.artifacts_dir)
        self.recorder = StoreRecorder(store, self.artifacts,
                                      predictions=PredictionLog(project))
        self._environment = None

    # -- planning ------------------------------------------------------------------

    def merged_params(self, step: StepSpec) -> dict[str, Any]:
        """Pipeline params the notebook declares, then the step's own (which always go)."""
        declared = declared_parameters(step.notebook)
        pipeline = {k: v for k, v in {**self.spec.params, **self.pipeline_overrides}.items()
                    if k in declared}
        return {**pipeline, **step.params, **self.step_overrides.get(step.name, {})}

    def environment(self):
        if self._environment is None:
            self._environment = capture.environment()
        return self._environment

    def plan(self) -> list[PlannedStep]:
        """Each step's cache key and whether it would be reused; runs nothing."""
        produced = {out for step in self.spec.steps.values() for out in step.outputs}
        cache = StatCache(self.project.cache_dir / "stat-cache.db")
        keys: dict[str, str] = {}
        planned = []
        try:
            for name in self.spec.order:
                step = self.spec.steps[name]
                params = self.merged_params(step)
                external = tuple(p for p in step.inputs if p not in produced)
                # A model reference counts by the digest it points at now, so moving an
                # alias re-executes the steps that use it.
                key_params = references.substitute(
                    params, lambda ref: self.store.models.resolve(ref.name).digest
                    if ref.kind == "models" else ref.text)
                key = step_key(
                    notebook=step.notebook, params=key_params,
                    inputs=input_digests(self.spec.root, external, cache, name),
                    needs={need: keys[need] for need in step.needs},
                    environment=self.environment().digest)
                keys[name] = key
                forced = name in self.forced
                planned.append(PlannedStep(step=step, params=params, key=key, forced=forced,
                                           cached=self.store.pipelines.cached_step(key)))
        finally:
            cache.close()
        return planned

    # -- running ---------------------------------------------------------------------

    def run(self) -> PipelineOutcome:
        plan = {p.step.name: p for p in self.plan()}
        spec_digest = digest_file(self.spec.path)
        pipeline_run = self.store.pipelines.start(self.spec.name, str(self.spec.path),
                                                  spec_digest, self.trigger,
                                                  list(self.spec.order))
        self.progress(f"pipeline {self.spec.name!r}: run {pipeline_run}, "
                      f"{len(plan)} steps, {self.jobs} at a time")
        outcomes: dict[str, StepOutcome] = {}
        running: dict[Future, tuple[str, int, float]] = {}
        waiting = list(self.spec.order)
        pool = None
        # Reports render on their own thread, overlapping the next steps' execution.
        self._reports = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-report")
        self._pending_reports: list[tuple[Future, int, str]] = []
        try:
            while waiting or running:
                for name in list(waiting):
                    needs = self.spec.steps[name].needs
                    if not all(n in outcomes for n in needs):
                        continue
                    waiting.remove(name)
                    blocked = [n for n in needs if outcomes[n].status not in ("finished",
                                                                              "cached")]
                    if blocked:
                        outcomes[name] = self._skip(pipeline_run, name, blocked)
                        continue
                    planned = plan[name]
                    if planned.cached is not None and not planned.forced:
                        outcomes[name] = self._reuse(pipeline_run, planned)
                        continue
                    started = self._begin(pipeline_run, planned, outcomes)
                    if isinstance(started, StepOutcome):
                        outcomes[name] = started
                        continue
                    task, run_id = started
                    executor = self._executor()
                    if pool is None:
                        pool = ThreadPoolExecutor(max_workers=self.jobs,
                                                  thread_name_prefix="mlops-step")
                        self._reports.submit(warm_up_reports)
                    running[pool.submit(executor.execute, task)] = (name, run_id,
                                                                    time.monotonic())
                if not running:
                    continue
                done, _ = wait(running, timeout=self.project.tracking.heartbeat_seconds,
                               return_when=FIRST_COMPLETED)
                for future in done:
                    name, run_id, started_at = running.pop(future)
                    outcomes[name] = self._complete(pipeline_run, plan[name], run_id,
                                                    future.result(), started_at)
                self._heartbeat(pipeline_run, [run_id for _, run_id, _ in running.values()])
            self._store_reports()
        except BaseException:
            self._interrupt(pipeline_run, running)
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            self._reports.shutdown(wait=False, cancel_futures=True)
        failed = [o for o in outcomes.values() if o.status in ("failed", "skipped")]
        status = "failed" if failed else "finished"
        self.store.pipelines.finish(pipeline_run, status,
                                    None if not failed else "; ".join(
                                        o.error or o.status for o in failed)[:2000])
        return PipelineOutcome(pipeline_run, self.spec.name, status, outcomes)

    def _store_reports(self) -> None:
        """Wait for the HTML reports and store each with its step's run."""
        for future, run_id, step in self._pending_reports:
            html = future.result()
            if html:
                self.recorder.put_bytes(run_id, f"report/{step}.html", html, "report")
        self._pending_reports.clear()

    def _executor(self) -> Executor:
        if self.executor is None:
            self.executor = LocalExecutor()
        return self.executor

    def _heartbeat(self, pipeline_run: int, run_ids: list[int]) -> None:
        self.store.pipelines.heartbeat(pipeline_run)
        for run_id in run_ids:
            self.store.runs.heartbeat(run_id)

    def _interrupt(self, pipeline_run: int, running: dict) -> None:
        """Ctrl-C or an internal error: stop kernels, leave nothing `running`."""
        if self.executor is not None:
            self.executor.interrupt()
        for name, run_id, _ in running.values():
            self.store.runs.end(run_id, "killed", "interrupted")
            self.store.pipelines.update_step(pipeline_run, name, status="killed",
                                             ended_at=time.time(), error="interrupted")
        self.store.pipelines.finish(pipeline_run, "killed", "interrupted")
        self.progress(f"pipeline {self.spec.name!r}: interrupted; kernels stopped")

    def _skip(self, pipeline_run: int, name: str, blocked: list[str]) -> StepOutcome:
        error = f"not run: needs {', '.join(blocked)}, which did not succeed"
        self.store.pipelines.update_step(pipeline_run, name, status="skipped", error=error)
        self.progress(f"  - {name}: skipped ({error})")
        return StepOutcome(name, "skipped", error=error)

    def _reuse(self, pipeline_run: int, planned: PlannedStep) -> StepOutcome:
        cached = planned.cached
        assert cached is not None
        for relative, digest in cached.output_files.items():
            target = self.spec.root / relative
            if not target.exists():
                self.artifacts.export(digest, target)
                self.progress(f"    restored {relative} from the artifact store")
        self.store.pipelines.update_step(
            pipeline_run, planned.step.name, status="cached", run_id=cached.run_id,
            cache_key=planned.key, cached_from=cached.id, params=cached.params,
            outputs=cached.outputs, output_files=cached.output_files,
            notebook_path=cached.notebook_path, started_at=time.time(), ended_at=time.time())
        self.progress(f"  = {planned.step.name}: cached (run {cached.run_id})")
        return StepOutcome(planned.step.name, "cached", run_id=cached.run_id,
                           outputs=dict(cached.outputs), notebook_path=cached.notebook_path)

    def _begin(self, pipeline_run: int, planned: PlannedStep,
               outcomes: Mapping[str, StepOutcome]) -> tuple[StepTask, int] | StepOutcome:
        """Resolve params, create the step's run; or fail the step on a bad reference."""
        step = planned.step
        try:
            params = references.substitute(
                planned.params, lambda ref: self._lookup(step, ref, outcomes))
        except InvalidInput as exc:
            self.store.pipelines.update_step(pipeline_run, step.name, status="failed",
                                             error=str(exc), cache_key=planned.key)
            self.progress(f"  x {step.name}: {exc}")
            return StepOutcome(step.name, "failed", error=str(exc))
        env = self.environment()
        self.store.environments.save(env)
        git = capture.git_state(self.spec.root)
        run_id = self.recorder.start(NewRun(
            uuid=uuid.uuid4().hex, name=f"{self.spec.name}/{step.name}", started_at=time.time(),
            source_kind="pipeline", notebook=str(step.notebook),
            code_digest=capture.notebook_code_digest(step.notebook),
            git_commit=git.commit if git else None, git_branch=git.branch if git else None,
            git_dirty=git.dirty if git else None, python=env.python, env_digest=env.digest,
            host=capture.host(), user=capture.user(), pid=os.getpid()))
        self.recorder.set_tags(run_id, {"mlops.pipeline": self.spec.name,
                                        "mlops.step": step.name,
                                        "mlops.pipeline_run": str(pipeline_run)})
        if params:
            self.recorder.log_params(run_id, {k: format_param(v) for k, v in params.items()})
        work = self.project.cache_dir / "pipelines" / str(pipeline_run) / step.name
        make_dirs(work)
        remote = self._executor().remote
        output_path = work / step.notebook.name
        task = StepTask(step=step.name, notebook=str(step.notebook), params=params,
                        cwd=str(self.spec.root),
                        outbox=None if remote else str(work / "outbox"),
                        output_path=None if remote else str(output_path))
        self.store.pipelines.update_step(
            pipeline_run, step.name, status="running", run_id=run_id, cache_key=planned.key,
            params=params, started_at=time.time(), notebook_path=str(output_path))
        self.progress(f"  > {step.name}: running {step.notebook.relative_to(self.spec.root)}"
                      f" (run {run_id})")
        return task, run_id

    def _check_gates(self, models: list[str]) -> str | None:
        """Run the registry's gates on each model version the step logged."""
        from ..registry.identity import identity_for
        from ..registry.releases import Registry

        if not models:
            return "`gates: true`, but the step logged no model"
        registry = Registry(self.project, self.store)
        identity = identity_for(capture.user(), self.project)
        failed = []
        for ref in models:
            for result in registry.run_gates(ref, identity):
                self.progress(f"    gate {'PASS' if result.passed else 'FAIL'} {ref}: "
                              f"{result.reason}")
                if not result.passed:
                    failed.append(f"{ref}: {result.gate} ({result.reason})")
        return f"gates failed: {'; '.join(failed)}" if failed else None

    def _lookup(self, step: StepSpec, ref: references.Reference,
                outcomes: Mapping[str, StepOutcome]) -> Any:
        line = self.spec.lines.get(("steps", step.name, "params"), step.line)
        where = f"{self.spec.path}: step {step.name!r} (line {line})"
        if ref.kind == "params":
            merged = {**self.spec.params, **self.pipeline_overrides}
            return merged[ref.name]
        if ref.kind == "models":
            try:
                version = self.store.models.resolve(ref.name)
            except MlopsError as exc:
                raise InvalidInput(f"{where}: {ref.text}: {exc}") from None
            target = self.project.cache_dir / "models" / (version.digest.split(":")[1] + ".skops")
            if not target.exists():
                make_dirs(target.parent)
                self.artifacts.export(version.digest, target, self.project.store.file_mode)
            return {"path": str(target.relative_to(self.spec.root)), "ref": version.ref,
                    "digest": version.digest}
        outputs = outcomes[ref.step].outputs
        if ref.name not in outputs:
            glued = ", ".join(sorted(outputs)) or "nothing"
            raise InvalidInput(f"{where}: {ref.text}: step {ref.step!r} glued no value "
                               f"{ref.name!r} (it glued: {glued})")
        return outputs[ref.name]

    def _complete(self, pipeline_run: int, planned: PlannedStep, run_id: int,
                  result: StepResult, started_at: float) -> StepOutcome:
        step = planned.step
        work = self.project.cache_dir / "pipelines" / str(pipeline_run) / step.name
        notebook_path = work / step.notebook.name
        if result.notebook_json and not notebook_path.exists():
            make_dirs(work)
            write_new_file(notebook_path, result.notebook_json, self.project.store.file_mode)
        error = result.error
        outputs: dict[str, Any] = {}
        warnings: list[str] = []
        ingested = None
        try:
            notebook = json.loads(result.notebook_json) if result.notebook_json else {}
        except ValueError:
            notebook, error = {}, error or "the executed notebook is not valid JSON"

        def staged(digest: str) -> bytes:
            return read_staged(digest, result.outbox_files, work / "outbox")

        try:
            check_step_result(result, step.name)
            ingested = ingest(notebook, self.recorder, run_id, staged)
        except (MlopsError, OSError, KeyError, TypeError) as exc:
            error = error or f"could not ingest what the notebook recorded: {exc}"
        else:
            outputs, warnings = ingested.outputs, ingested.warnings
            if ingested.status == "failed" and error is None:
                error = ingested.error or "the notebook ended its run as failed"
        if result.notebook_json:
            self.recorder.put_bytes(run_id, f"executed/{step.notebook.name}",
                                    result.notebook_json, "notebook")
            self._pending_reports.append(
                (self._reports.submit(render_report, result.notebook_json), run_id, step.name))
        self.recorder.put_file(run_id, f"source/{step.notebook.name}", step.notebook,
                               "notebook")
        output_files: dict[str, str] = {}
        if error is None:
            for relative in step.inputs:
                path = self.spec.root / relative
                if path.exists():
                    self.recorder.log_dataset(run_id, describe_path(path), "input", relative)
            for relative in step.outputs:
                path = self.spec.root / relative
                if not path.exists():
                    error = f"declared output {relative} was not written"
                    break
                version = describe_path(path)
                self.recorder.log_dataset(run_id, version, "output", relative)
                if path.is_file():
                    digest, _ = self.recorder.keep_file(path)
                    output_files[relative] = digest
        if error is None and step.gates:
            error = self._check_gates(ingested.models if ingested else [])
        status = "failed" if error else "finished"
        seconds = time.monotonic() - started_at
        if error:
            error = (f"step {step.name!r} ({step.notebook.relative_to(self.spec.root)}) failed: "
                     f"{error}; executed notebook: {notebook_path}")
        self.recorder.end(run_id, status, error, str(step.notebook),
                          capture.notebook_code_digest(step.notebook))
        self.store.pipelines.update_step(pipeline_run, step.name, status=status,
                                         outputs=outputs, output_files=output_files,
                                         ended_at=time.time(), error=error)
        mark = "x" if error else "+"
        self.progress(f"  {mark} {step.name}: {status} in {seconds:.1f}s (run {run_id})"
                      + (f"\n    {error}" if error else ""))
        for warning in warnings:
            self.progress(f"    warning: {warning}")
        return StepOutcome(step.name, status, run_id=run_id, error=error, seconds=seconds,
                           outputs=outputs, notebook_path=str(notebook_path))
