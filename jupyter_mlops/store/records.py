"""The values the store hands out: frozen dataclasses, never rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RUN_STATUSES = ("running", "finished", "failed", "killed")
DATASET_ROLES = ("input", "output")


@dataclass(frozen=True)
class Run:
    """One execution that recorded something; `metrics` holds each key's latest value."""

    id: int
    uuid: str
    name: str | None
    status: str
    started_at: float
    ended_at: float | None
    notebook: str | None
    source_kind: str
    code_digest: str | None
    git_commit: str | None
    git_branch: str | None
    git_dirty: bool | None
    python: str | None
    env_digest: str | None
    host: str | None
    user: str | None
    error: str | None
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    step: int | None
    timestamp: float


@dataclass(frozen=True)
class DatasetVersion:
    """A content digest of a file, folder or DataFrame, with what we know of its shape."""

    digest: str
    kind: str  # file | folder | dataframe
    size: int | None
    rows: int | None
    schema: Mapping[str, str] | None


@dataclass(frozen=True)
class RunDataset:
    """A dataset version as one run used it."""

    dataset: DatasetVersion
    role: str
    source: str  # the path, or the variable name of a DataFrame


@dataclass(frozen=True)
class ArtifactLink:
    """Stored bytes (by digest) linked to a run under a name."""

    run_id: int
    name: str
    digest: str
    size: int
    kind: str  # artifact | notebook | source | git-diff | model | report | dataset


@dataclass(frozen=True)
class ModelVersion:
    """A registered model; `version` is None until a pipeline step's records are ingested."""

    name: str
    version: int | None
    run_id: int | None
    digest: str
    flavor: str
    signature: Mapping[str, Any] | None
    created_at: float
    input_datasets: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}:{'(pending)' if self.version is None else self.version}"


@dataclass(frozen=True)
class Environment:
    digest: str
    python: str
    packages: Mapping[str, str]



FAILURE_KINDS = ("notebook", "kernel", "step", "runner")


@dataclass(frozen=True)
class StepFailure:
    """Why a step failed, kept whole. `kind` says whose fault it is:

    - notebook: a cell raised (`cell` is its 1-based position in the user's notebook,
      `source` its code, `traceback` as the kernel reported it), or the notebook ended
      its own run as failed;
    - kernel: the notebook could not run to its end for a reason outside its cells (the
      kernel died, a timeout, the executor lost its worker);
    - step: the step broke a rule of the pipeline (a declared output not written, a gate
      failed, a reference that does not resolve, records refused);
    - runner: an exception in jupyter-mlops's own code, a bug (`traceback` is ours).
    """

    kind: str
    message: str  # one line: what the progress line and the run's `error` say
    cell: int | None = None
    source: str | None = None
    ename: str | None = None
    evalue: str | None = None
    traceback: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepRun:
    """One step of a pipeline run. Status: pending, running, finished (it executed),
    cached (a previous execution with the same key was reused), failed, skipped (a step
    it needs did not succeed) or killed."""

    id: int
    pipeline_run_id: int
    step: str
    status: str
    run_id: int | None
    cache_key: str | None
    cached_from: int | None
    params: Mapping[str, Any]
    outputs: Mapping[str, Any]
    output_files: Mapping[str, str]
    started_at: float | None
    ended_at: float | None
    error: str | None
    notebook_path: str | None
    failure: StepFailure | None = None  # set when status is failed
    warnings: tuple[str, ...] = ()  # e.g. an HTML report that could not be rendered


@dataclass(frozen=True)
class PipelineRun:
    id: int
    name: str
    spec_path: str
    spec_digest: str | None
    status: str  # running | finished | failed | killed
    trigger: str  # manual | schedule
    started_at: float
    ended_at: float | None
    error: str | None
    steps: tuple[StepRun, ...] = ()
