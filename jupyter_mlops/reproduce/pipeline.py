"""`mlops pipeline reproduce RUN`: re-execute every step of a pipeline run from its
record, in order, ignoring the step cache, in one scratch folder: each step's
reproduction reads the files the steps before it wrote there, each checked against
the digests the original step read. Reported per step; the worst verdict is the
pipeline's (could not run > differs > reproduced)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..project import Project
from ..store import Store
from ..store.records import PipelineRun
from .run import (
    EXIT_CODES,
    Options,
    Reproduction,
    remove_scratch,
    reproduce,
    reproduction_text,
    scratch_fate,
    scratch_folder,
)


@dataclass(frozen=True)
class StepReproduction:
    step: str
    reproduction: Reproduction | None  # None: the step made no run (failed before, skipped)
    note: str | None = None  # why it was not reproduced


@dataclass(frozen=True)
class PipelineReproduction:
    pipeline_run: PipelineRun
    verdict: str
    steps: tuple[StepReproduction, ...]
    scratch: Path | None  # kept
    seconds: float

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]


def reproduce_pipeline(project: Project, store: Store, read_blob: Callable[[str], bytes],
                       pipeline_run_id: int, options: Options,
                       say: Callable[[str], None] = lambda message: None
                       ) -> PipelineReproduction:
    started = time.monotonic()
    pipeline_run = store.pipelines.get(pipeline_run_id)
    scratch = scratch_folder(options.folder, project.cache_dir, f"pipeline-{pipeline_run_id}")
    steps: list[StepReproduction] = []
    kernels = None if options.cold else _warm_start(project, pipeline_run)
    try:
        for step in pipeline_run.steps:
            if step.run_id is None:
                steps.append(StepReproduction(step.step, None,
                                              f"{step.status}: the step recorded no run"))
                continue
            say(f"step {step.step}: reproducing run {step.run_id}")
            found = reproduce(project, store, read_blob, str(step.run_id),
                              replace(options, folder=None), say, scratch=scratch,
                              kernels=kernels)
            say(f"step {step.step}: {found.verdict}")
            steps.append(StepReproduction(step.step, found))
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM as the CLI maps it
        say(f"interrupted: the scratch folder {scratch} was {scratch_fate(options)}")
        raise
    finally:
        if kernels is not None:
            kernels.close()
        if not options.keep:
            remove_scratch(scratch, named=options.folder is not None)
    verdicts = [s.reproduction.verdict if s.reproduction else "could not run" for s in steps]
    worst = max(verdicts, key=EXIT_CODES.__getitem__, default="could not run")
    return PipelineReproduction(pipeline_run, worst, tuple(steps),
                                scratch if options.keep else None, time.monotonic() - started)


def _warm_start(project: Project, pipeline_run: PipelineRun):  # noqa: ANN202 - WarmStart
    """A template for the steps' kernels (warm steps, as `mlops pipeline run`), preloading
    what the executed notebooks of the run import."""
    from ..capture import environment
    from ..pipelines.warm import WarmStart

    kernels = WarmStart()
    kernels.prepare(project.root, environment().digest,
                    [Path(step.notebook_path) for step in pipeline_run.steps
                     if step.notebook_path])
    return kernels


def pipeline_reproduction_text(found: PipelineReproduction) -> str:
    """The pipeline's verdict, one line per step, then each step's details."""
    run = found.pipeline_run
    lines = [f"{found.verdict}: pipeline run {run.id} ({run.name}), "
             f"{len(found.steps)} step(s) re-executed from their records"]
    for step in found.steps:
        if step.reproduction is None:
            lines.append(f"  {step.step}: could not run: {step.note}")
        else:
            again = step.reproduction.run
            made = f" (run {again.id})" if again is not None else ""
            lines.append(f"  {step.step}: {step.reproduction.verdict}{made}")
    for step in found.steps:
        if step.reproduction is not None:
            details = reproduction_text(replace(step.reproduction, scratch=None))
            lines += ["", f"step {step.step}:", details]
    if found.scratch is not None:
        lines.append(f"\nscratch folder kept: {found.scratch}")
    return "\n".join(lines)
