"""Everything recorded about a run, and runs side by side: pure data, no rendering."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .errors import InvalidInput
from .store import Store
from .store.records import (
    ArtifactLink,
    Environment,
    MetricPoint,
    ModelVersion,
    Run,
    RunDataset,
    StepRun,
)


@dataclass(frozen=True)
class RunDetail:
    run: Run
    metric_history: list[MetricPoint]
    datasets: list[RunDataset]
    artifacts: list[ArtifactLink]
    models: list[ModelVersion]
    environment: Environment | None
    step: StepRun | None = None  # the pipeline step that made the run (its failure, warnings)


def describe_run(store: Store, ref: str | int) -> RunDetail:
    run = store.runs.resolve(ref)
    return RunDetail(
        run=run,
        metric_history=store.runs.metric_history(run.id),
        datasets=store.datasets.for_run(run.id),
        artifacts=store.artifacts.for_run(run.id),
        models=store.models.for_run(run.id),
        environment=store.environments.get(run.env_digest) if run.env_digest else None,
        step=store.pipelines.step_of_run(run.id) if run.source_kind == "pipeline" else None,
    )


@dataclass(frozen=True)
class ComparisonRow:
    section: str  # run | code | params | metrics | data | environment
    key: str
    values: tuple[str | None, ...]

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1


@dataclass(frozen=True)
class Comparison:
    runs: tuple[Run, ...]
    rows: tuple[ComparisonRow, ...]
    identical_packages: int = field(default=0)

    @property
    def differences(self) -> list[ComparisonRow]:
        return [row for row in self.rows if row.differs]


def compare_runs(store: Store, refs: Sequence[str | int]) -> Comparison:
    """Runs side by side: params, metrics, data, environment and code, by row."""
    if len(refs) < 2:
        raise InvalidInput("compare needs at least two runs")
    details = [describe_run(store, ref) for ref in refs]
    runs = tuple(d.run for d in details)
    rows: list[ComparisonRow] = []

    def add(section: str, key: str, values: Sequence[object]) -> None:
        rows.append(ComparisonRow(section, key,
                                  tuple(None if v is None else str(v) for v in values)))

    add("run", "name", [r.name for r in runs])
    add("run", "status", [r.status for r in runs])
    add("code", "notebook", [r.notebook for r in runs])
    add("code", "code digest", [r.code_digest for r in runs])
    add("code", "git commit", [r.git_commit for r in runs])
    add("code", "git dirty", [r.git_dirty for r in runs])
    for key in _union(r.params for r in runs):
        add("params", key, [r.params.get(key) for r in runs])
    for key in _union(r.metrics for r in runs):
        add("metrics", key, [_number(r.metrics.get(key)) for r in runs])
    data_keys = _union({f"{d.role}: {d.source}": d for d in detail.datasets} for detail in details)
    for key in data_keys:
        values = []
        for detail in details:
            match = [d for d in detail.datasets if f"{d.role}: {d.source}" == key]
            values.append(match[0].dataset.digest if match else None)
        add("data", key, values)
    add("environment", "python", [r.python for r in runs])
    envs = [d.environment.packages if d.environment else {} for d in details]
    identical = 0
    for name in _union(envs):
        values = [env.get(name) for env in envs]
        if len(set(values)) > 1:
            add("environment", name, values)
        else:
            identical += 1
    return Comparison(runs=runs, rows=tuple(rows), identical_packages=identical)


def _union(mappings) -> list[str]:
    keys: dict[str, None] = {}
    for mapping in mappings:
        keys.update(dict.fromkeys(mapping))
    return sorted(keys)


def _number(value: float | None) -> str | None:
    return None if value is None else f"{value:.6g}"
