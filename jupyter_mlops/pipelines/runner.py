"""Running a pipeline: the DAG in order, in parallel up to `jobs`, cached, recorded.

Only the coordinating thread touches the store. Worker threads (or Dask
workers) only execute notebooks; their results come back here to be ingested.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .. import capture
from ..artifacts import ArtifactStore
from ..datasets import describe_path
from ..errors import InvalidInput, MlopsError, StoreUnavailable
from ..hashing import StatCache, digest_file, digest_folder
from ..monitoring.predlog import PredictionLog
from ..project import Project, make_dirs, write_new_file
from ..recorders import StoreRecorder
from ..store import Store
from ..store.records import StepFailure, StepRun
from ..store.runs import NewRun
from ..tracking import format_param
from . import references
from .cache import input_digests, step_key
from .execution import (
    StepResult,
    StepTask,
    check_step_result,
    failure_from_exception,
    read_staged,
)
from .executors import Executor, LocalExecutor
from .ingest import ingest
from .reports import ReportRenderer
from .spec import PipelineSpec, StepSpec, declared_parameters, did_you_mean, undeclared_parameter

T = TypeVar("T")
# A step run's tag: how its kernel started ("warm", "cold: why"); one of the runner's
# own tags (team_protocol.RUNNER_TAGS), which no record of the step may set.
KERNEL_TAG = "mlops.kernel"


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
    failure: StepFailure | None = None
    warnings: list[str] = field(default_factory=list)


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
            notebook = spec.steps[step].notebook
            problem = undeclared_parameter(notebook, name, str(notebook.relative_to(spec.root)))
            if problem:
                raise InvalidInput(f"-p {item}: step {step!r}: {problem}")
            steps.setdefault(step, {})[name] = value
        else:
            if name not in spec.params:
                raise InvalidInput(f"-p {item}: pipeline {spec.name!r} declares no parameter "
                                   f"{name!r} (declared: {', '.join(spec.params) or 'none'}; "
                                   "use STEP.NAME=VALUE for a step's own parameter)"
                                   f"{did_you_mean(name, list(spec.params))}")
            pipeline[name] = value
    return pipeline, steps


class PipelineRunner:
    def __init__(self, spec: PipelineSpec, project: Project, store: Store, *,
                 overrides: list[str] | None = None, jobs: int = 1,
                 force: list[str] | None = None, executor: Executor | None = None,
                 trigger: str = "manual", progress: Callable[[str], None] | None = None,
                 cold: bool = False) -> None:
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
        self.cold = cold  # every step's kernel starts cold, none forked from a template
        self._owns_executor = False  # made here: closed (its template too) after the run
        self.trigger = trigger
        self.progress = progress or (lambda message: None)
        # Team mode (the store is the server's): blobs are downloaded from the server and
        # each step run's records go to it, one stream per run.
        self.team = bool(getattr(store, "remote", False))
        self.artifacts, self.recorder = (self._team_recording() if self.team else
                                         self._embedded_recording())
        self._environment = None

    def _embedded_recording(self) -> tuple[ArtifactStore, StoreRecorder]:
        artifacts = ArtifactStore(self.project.artifacts_dir)
        return artifacts, StoreRecorder(self.store, artifacts,
                                        predictions=PredictionLog(self.project))

    def _team_recording(self) -> tuple[Any, Any]:
        from ..remote.blobs import RemoteBlobs
        from ..remote.pipeline import StepRunsRecorder
        from ..remote.spool import Spool

        client = self.store.client  # type: ignore[attr-defined]
        return RemoteBlobs(client), StepRunsRecorder(
            client, Spool.for_project(self.project), self.store.pipelines,  # type: ignore[arg-type]
            ack_timeout=self.project.store.ack_timeout_seconds)

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

    def stat_cache(self) -> StatCache:
        return StatCache(self.project.cache_dir / "stat-cache.db")

    def plan(self, cache: StatCache | None = None) -> list[PlannedStep]:
        """Each step's cache key and whether it would be reused; runs nothing."""
        produced = {out for step in self.spec.steps.values() for out in step.outputs}
        own_cache = cache is None
        cache = self.stat_cache() if cache is None else cache
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
            if own_cache:
                cache.close()
        return planned

    # -- running ---------------------------------------------------------------------

    def run(self) -> PipelineOutcome:
        # One stat cache for planning and for checking the outputs of reused steps.
        self._stat_cache = self.stat_cache()
        try:
            return self._run()
        finally:
            self._stat_cache.close()
            if self._owns_executor and self.executor is not None:
                self.executor.close()
                self.executor, self._owns_executor = None, False
            if self.team:  # what the server has not taken waits in the spool
                self.recorder.close()

    def _run(self) -> PipelineOutcome:
        plan = {p.step.name: p for p in self.plan(self._stat_cache)}
        if any(p.cached is None or p.forced for p in plan.values()):
            # The template (if any) imports while the run is recorded and papermill loads.
            # An executor made elsewhere may have nothing to prepare (no `prepare`).
            prepare = getattr(self._executor(), "prepare", None)
            if prepare is not None:
                prepare(self.spec.root, self.environment().digest,
                        [step.notebook for step in self.spec.steps.values()],
                        self.spec.preload)
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
        self._run_ids: dict[str, int] = {}  # the run each executing step records into
        # Reports render on their own thread, overlapping the next steps' execution.
        self._reports = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-report")
        self._renderer = ReportRenderer()  # used on that one thread alone
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
                        reused = self._guard(pipeline_run, name,
                                             lambda p=planned: self._reuse(pipeline_run, p))
                        if reused is not None:
                            outcomes[name] = reused
                            continue
                    started = self._guard(pipeline_run, name,
                                          lambda p=planned: self._begin(pipeline_run, p,
                                                                        outcomes))
                    if isinstance(started, StepOutcome):
                        outcomes[name] = started
                        continue
                    task, run_id = started
                    executor = self._executor()
                    if pool is None:
                        pool = ThreadPoolExecutor(max_workers=self.jobs,
                                                  thread_name_prefix="mlops-step")
                        self._reports.submit(self._renderer.warm_up)
                    running[pool.submit(executor.execute, task)] = (name, run_id,
                                                                    time.monotonic())
                if not running:
                    continue
                done, _ = wait(running, timeout=self.project.tracking.heartbeat_seconds,
                               return_when=FIRST_COMPLETED)
                for future in done:
                    name, run_id, started_at = running.pop(future)
                    result = self._result(future, name)
                    outcomes[name] = self._guard(
                        pipeline_run, name,
                        lambda n=name, r=run_id, res=result, t=started_at: self._complete(
                            pipeline_run, plan[n], r, res, t))
                self._heartbeat(pipeline_run, [run_id for _, run_id, _ in running.values()])
            self._store_reports(pipeline_run, outcomes)
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

    def _result(self, future: Future, step: str) -> StepResult:
        """What the executor sent back; an executor that raised (a Dask worker lost, a
        bug) gives a failed result, so that the other steps go on."""
        try:
            return future.result()
        except Exception as exc:
            failure = failure_from_exception(exc, "kernel")
            return StepResult(step=step, notebook_json=b"", error=failure.message,
                              failure=failure)

    def _guard(self, pipeline_run: int, name: str, work: Callable[[], T]) -> T | StepOutcome:
        """`work()`, or the step failed by what it raised: an `MlopsError` is the step's
        problem, said in its message; any other exception is a bug of ours, kept with our
        traceback (kind `runner`). A store that can't be written ends the pipeline."""
        try:
            return work()
        except (StoreUnavailable, sqlite3.Error):
            raise
        except MlopsError as exc:
            failure = StepFailure(kind="step", message=str(exc))
        except Exception as exc:
            failure = failure_from_exception(exc, "runner")
        return self._fail(pipeline_run, name, failure)

    def _fail(self, pipeline_run: int, name: str, failure: StepFailure) -> StepOutcome:
        step = self.spec.steps[name]
        run_id = self._run_ids.get(name)
        error = (f"step {name!r} ({step.notebook.relative_to(self.spec.root)}) failed: "
                 f"{failure.message}")
        if run_id is not None:
            self.recorder.end(run_id, "failed", error, None, None)
        self.store.pipelines.update_step(pipeline_run, name, status="failed",
                                         ended_at=time.time(), error=error, failure=failure)
        self.progress(f"  x {name}: failed" + ("" if run_id is None else f" (run {run_id})")
                      + f"\n    {error}")
        if failure.kind == "runner":
            self.progress("".join(failure.traceback).rstrip())
        return StepOutcome(name, "failed", run_id=run_id, error=error, failure=failure)

    def _store_reports(self, pipeline_run: int, outcomes: Mapping[str, StepOutcome]) -> None:
        """Wait for the HTML reports and store each with its step's run; a report that
        could not be rendered is a warning on its step, kept and shown."""
        for future, run_id, step in self._pending_reports:
            try:
                html = future.result()
            except Exception as exc:
                warning = (f"the HTML report could not be rendered: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}")
                outcomes[step].warnings.append(warning)
                self.store.pipelines.update_step(pipeline_run, step,
                                                 warnings=outcomes[step].warnings)
                self.progress(f"    warning: {step}: {warning}")
                continue
            self.recorder.put_bytes(run_id, f"report/{step}.html", html, "report")
        self._pending_reports.clear()

    def _executor(self) -> Executor:
        if self.executor is None:
            from .warm import ASKED_COLD

            self.executor = LocalExecutor(cold=ASKED_COLD if self.cold else None)
            self._owns_executor = True
        return self.executor

    def _heartbeat(self, pipeline_run: int, run_ids: list[int]) -> None:
        self.store.pipelines.heartbeat(pipeline_run)
        for run_id in run_ids:
            self.recorder.heartbeat(run_id)

    def _interrupt(self, pipeline_run: int, running: dict) -> None:
        """Ctrl-C or an internal error: stop kernels, leave nothing `running`."""
        if self.executor is not None:
            self.executor.interrupt()
        for name, run_id, _ in running.values():
            self.recorder.end(run_id, "killed", "interrupted", None, None)
            self.store.pipelines.update_step(pipeline_run, name, status="killed",
                                             ended_at=time.time(), error="interrupted")
        self.store.pipelines.finish(pipeline_run, "killed", "interrupted")
        self.progress(f"pipeline {self.spec.name!r}: interrupted; kernels stopped")

    def _skip(self, pipeline_run: int, name: str, blocked: list[str]) -> StepOutcome:
        error = f"not run: needs {', '.join(blocked)}, which did not succeed"
        self.store.pipelines.update_step(pipeline_run, name, status="skipped", error=error)
        self.progress(f"  - {name}: skipped ({error})")
        return StepOutcome(name, "skipped", error=error)

    def _reuse(self, pipeline_run: int, planned: PlannedStep) -> StepOutcome | None:
        """Reuse the cached execution, its declared outputs first made to hold the bytes it
        wrote; None when one can't be (the step then executes)."""
        cached = planned.cached
        assert cached is not None
        name = planned.step.name
        restored, problem = self._restore_outputs(planned.step, cached)
        if problem is not None:
            self.progress(f"  ~ {name}: not reused (run {cached.run_id}): {problem}")
            return None
        self.store.pipelines.update_step(
            pipeline_run, name, status="cached", run_id=cached.run_id,
            cache_key=planned.key, cached_from=cached.id, params=cached.params,
            outputs=cached.outputs, output_files=cached.output_files,
            notebook_path=cached.notebook_path, started_at=time.time(), ended_at=time.time())
        note = f"; restored {', '.join(restored)} from the artifact store" if restored else ""
        self.progress(f"  = {name}: cached (run {cached.run_id}){note}")
        return StepOutcome(name, "cached", run_id=cached.run_id,
                           outputs=dict(cached.outputs), notebook_path=cached.notebook_path)

    def _restore_outputs(self, step: StepSpec, cached: StepRun) -> tuple[list[str], str | None]:
        """Check each declared output against the digest the cached execution recorded
        (the stat cache makes an unchanged file cost a `stat`), and restore a file that is
        missing or differs. Returns the outputs restored, and why the cached execution
        can't be reused, if so: a folder that differs (folders are not kept), an output
        it did not record, a file the artifact store no longer holds."""
        restored: list[str] = []
        folders: dict[str, str] | None = None
        for relative in step.outputs:
            target = self.spec.root / relative
            digest = cached.output_files.get(relative)
            try:
                if digest is None:  # a folder output: checked, but its files are not kept
                    if folders is None:
                        folders = {d.source: d.dataset.digest
                                   for d in self.store.datasets.for_run(cached.run_id)
                                   if d.role == "output"}
                    if relative not in folders:
                        return restored, f"it recorded no output {relative}"
                    if not target.is_dir() or \
                            digest_folder(target, self._stat_cache) != folders[relative]:
                        return restored, (f"the folder {relative} differs from what it wrote, "
                                          "and folders are not kept to be restored")
                    continue
                if target.is_file() and not target.is_symlink() and \
                        digest_file(target, self._stat_cache) == digest:
                    continue
                if target.is_dir() and not target.is_symlink():
                    return restored, f"{relative} is now a folder"
                self.artifacts.export(digest, target)
            except (MlopsError, OSError) as exc:
                return restored, f"{relative} could not be checked or restored: {exc}"
            restored.append(relative)
        return restored, None

    def _begin(self, pipeline_run: int, planned: PlannedStep,
               outcomes: Mapping[str, StepOutcome]) -> tuple[StepTask, int] | StepOutcome:
        """Resolve params, create the step's run; or fail the step on a bad reference."""
        step = planned.step
        try:
            params = references.substitute(
                planned.params, lambda ref: self._lookup(step, ref, outcomes))
        except InvalidInput as exc:
            failure = StepFailure(kind="step", message=str(exc))
            self.store.pipelines.update_step(pipeline_run, step.name, status="failed",
                                             error=str(exc), cache_key=planned.key,
                                             failure=failure)
            self.progress(f"  x {step.name}: {exc}")
            return StepOutcome(step.name, "failed", error=str(exc), failure=failure)
        env = self.environment()
        git = capture.git_state(self.spec.root)
        run_id = self.recorder.start(NewRun(
            uuid=uuid.uuid4().hex, name=f"{self.spec.name}/{step.name}", started_at=time.time(),
            source_kind="pipeline", notebook=str(step.notebook),
            code_digest=capture.notebook_code_digest(step.notebook),
            git_commit=git.commit if git else None, git_branch=git.branch if git else None,
            git_dirty=git.dirty if git else None, python=env.python, env_digest=env.digest,
            host=capture.host(), user=capture.user(), pid=os.getpid()), env)
        self._run_ids[step.name] = run_id
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
                        output_path=None if remote else str(output_path),
                        env_digest=env.digest)
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
        if self.team:
            return ("`gates: true` runs the registry's gates, which a team server does not "
                    "run for clients yet; request a release (`POST /api/v1/releases`): the "
                    "server computes the gates there")
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
        failure: StepFailure | None = None
        outputs: dict[str, Any] = {}
        warnings: list[str] = []
        ingested = None
        try:
            check_step_result(result, step.name)
        except MlopsError as exc:  # a remote executor's result, refused: nothing of it used
            failure = StepFailure(kind="step",
                                  message=f"could not ingest what the notebook recorded: {exc}")
        else:
            failure = result.failure or (None if result.error is None else StepFailure(
                kind="kernel", message=str(result.error)))
            try:
                notebook = json.loads(result.notebook_json) if result.notebook_json else {}
            except ValueError:
                notebook = {}
                failure = failure or StepFailure(
                    kind="kernel", message="the executed notebook is not valid JSON")

            def staged(digest: str) -> bytes:
                return read_staged(digest, result.outbox_files, work / "outbox")

            try:
                ingested = ingest(notebook, self.recorder, run_id, staged)
            except (StoreUnavailable, sqlite3.Error):
                raise
            except (MlopsError, OSError) as exc:
                failure = failure or StepFailure(
                    kind="step", message=f"could not ingest what the notebook recorded: {exc}")
            except Exception as exc:  # a bug of ours: kept with its traceback, step failed
                failure = failure or failure_from_exception(exc, "runner")
            else:
                outputs, warnings = ingested.outputs, list(ingested.warnings)
                if ingested.status == "failed" and failure is None:
                    failure = StepFailure(kind="notebook", message=ingested.error or
                                          "the notebook ended its run as failed")
        if isinstance(result.kernel_start, str) and result.kernel_start:
            self.recorder.set_tags(run_id, {KERNEL_TAG: result.kernel_start})
        if result.notebook_json:
            self.recorder.put_bytes(run_id, f"executed/{step.notebook.name}",
                                    result.notebook_json, "notebook")
            self._pending_reports.append(
                (self._reports.submit(self._renderer.render, result.notebook_json), run_id,
                 step.name))
        self.recorder.put_file(run_id, f"source/{step.notebook.name}", step.notebook,
                               "notebook")
        output_files: dict[str, str] = {}
        if failure is None:
            for relative in step.inputs:
                path = self.spec.root / relative
                if path.exists():
                    self.recorder.log_dataset(run_id, describe_path(path), "input", relative)
            for relative in step.outputs:
                path = self.spec.root / relative
                if not path.exists():
                    failure = StepFailure(kind="step",
                                          message=f"declared output {relative} was not written")
                    break
                version = describe_path(path)
                self.recorder.log_dataset(run_id, version, "output", relative)
                if path.is_file():
                    digest, _ = self.recorder.keep_file(path)
                    output_files[relative] = digest
        if failure is None and step.gates:
            gates = self._check_gates(ingested.models if ingested else [])
            failure = None if gates is None else StepFailure(kind="step", message=gates)
        status = "failed" if failure else "finished"
        seconds = time.monotonic() - started_at
        error = None
        if failure:
            error = (f"step {step.name!r} ({step.notebook.relative_to(self.spec.root)}) failed: "
                     f"{failure.message}; executed notebook: {notebook_path}")
        self.recorder.end(run_id, status, error, str(step.notebook),
                          capture.notebook_code_digest(step.notebook))
        self.store.pipelines.update_step(pipeline_run, step.name, status=status,
                                         outputs=outputs, output_files=output_files,
                                         ended_at=time.time(), error=error, failure=failure,
                                         warnings=warnings)
        mark = "x" if error else "+"
        start = f", kernel {result.kernel_start}" if isinstance(result.kernel_start, str) else ""
        self.progress(f"  {mark} {step.name}: {status} in {seconds:.1f}s (run {run_id}{start})"
                      + (f"\n    {error}" if error else ""))
        if failure is not None and failure.kind == "runner":
            self.progress("".join(failure.traceback).rstrip())
        for warning in warnings:
            self.progress(f"    warning: {warning}")
        return StepOutcome(step.name, status, run_id=run_id, error=error, seconds=seconds,
                           outputs=outputs, notebook_path=str(notebook_path), failure=failure,
                           warnings=warnings)
