"""Replaying what a step glued into its output notebook, through the store calls.

Records named `mlops.record.*` (written by `GlueRecorder`) become params,
metrics, datasets, artifacts and model versions of the step's run; every other
scrap is one of the step's outputs, which later steps can reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import Conflict, InvalidInput
from ..glue import RECORD_PREFIX, read_scraps
from ..recorders import RECORD_VERSION, StoreRecorder
from ..store.records import DatasetVersion, ModelVersion
from ..validation import check_glued_record, metric_from_json

MAX_RECORDS = 1_000_000  # a step that glues more is looping, or forging


@dataclass
class Ingested:
    outputs: dict[str, Any] = field(default_factory=dict)
    status: str | None = None  # what the notebook's `%mlops end` said, if it ran
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # refs of the versions registered


def ingest(notebook: dict[str, Any], recorder: StoreRecorder, run_id: int,
           staged: Callable[[str], bytes]) -> Ingested:
    """Replay `notebook`'s records into run `run_id`; `staged(digest)` gives outbox bytes.

    Every record is checked against its schema (`validation.check_glued_record`)
    before the first one is replayed, so a forged record (a digest like
    `../../etc/passwd`, a name with a newline, a tag under the runner's
    `mlops.` prefix such as `mlops.step`) stores nothing and reads no file: the
    step fails with `RecordRefused` naming the record and the value refused.
    """
    result = Ingested()
    records: list[dict[str, Any]] = []
    for name, value in read_scraps(notebook):
        if not name.startswith(RECORD_PREFIX):
            result.outputs[name] = value
            continue
        records.append(dict(check_glued_record(name, value, RECORD_VERSION)))
        if len(records) > MAX_RECORDS:
            raise InvalidInput(f"the notebook glued more than {MAX_RECORDS} records")
    target = _StagedTarget(recorder, staged, result)
    for record in records:
        try:
            version = replay(record, target, run_id)
        except Conflict as exc:
            result.warnings.append(str(exc))
            continue
        if version is not None:
            result.models.append(version.ref)
    return result


class ReplayTarget(Protocol):
    """Where replayed records go: the calls `replay` makes, one per kind of record."""

    def started(self, run_id: int, run: Mapping[str, Any]) -> None: ...
    def log_params(self, run_id: int, params: dict[str, str]) -> None: ...
    def set_tags(self, run_id: int, tags: dict[str, str]) -> None: ...
    def log_metrics(self, run_id: int,
                    points: list[tuple[str, float, int | None, float]]) -> None: ...
    def log_dataset(self, run_id: int, version: DatasetVersion, role: str,
                    source: str) -> None: ...
    def link_artifact(self, run_id: int, record: Mapping[str, Any]) -> None: ...
    def register_model(self, run_id: int, record: Mapping[str, Any]) -> ModelVersion: ...
    def log_predictions(self, run_id: int, record: Mapping[str, Any]) -> None: ...
    def heartbeat(self, run_id: int, at: float) -> None: ...
    def set_source(self, run_id: int, notebook: str | None, code_digest: str | None) -> None: ...
    def ended(self, run_id: int, status: str, error: str | None) -> None: ...


def replay(record: Mapping[str, Any], target: ReplayTarget, run_id: int
           ) -> ModelVersion | None:
    """Apply one checked record (`validation.check_glued_record`) to run `run_id`.

    The one replay path of glued records: the pipeline runner replays a step's
    notebook through it (`_StagedTarget`: files come from the step's outbox),
    the team server a client's batch (`teamserver.records`: files were uploaded
    first). Returns the model version a `model` record registered, else None.
    Raises what the target raises (`Conflict` for a param logged twice, ...),
    and `InvalidInput` for an unknown operation.
    """
    op = record["op"]
    if op == "start":
        target.started(run_id, record.get("run") or {})
    elif op == "params":
        target.log_params(run_id, record["params"])
    elif op == "tags":
        target.set_tags(run_id, record["tags"])
    elif op == "metrics":
        if record["points"]:  # none: nothing to write (PostgreSQL's upsert takes no empty set)
            target.log_metrics(run_id, [(key, metric_from_json(value), step, at)
                                        for key, value, step, at in record["points"]])
    elif op == "dataset":
        target.log_dataset(run_id, DatasetVersion(**record["dataset"]), record["role"],
                           record["source"])
    elif op == "artifact":
        target.link_artifact(run_id, record)
    elif op == "model":
        return target.register_model(run_id, record)
    elif op == "predictions":
        target.log_predictions(run_id, record)
    elif op == "heartbeat":
        target.heartbeat(run_id, record["at"])
    elif op == "source":
        target.set_source(run_id, record.get("notebook"), record.get("code_digest"))
    elif op == "end":
        target.ended(run_id, record["status"], record.get("error"))
    else:
        raise InvalidInput(f"unknown record operation {op!r}")
    return None


class _StagedTarget:
    """A step's records into the store: files from the step's outbox (`staged(digest)`),
    the notebook's `end` kept in `result` for the runner (which ends the run itself)."""

    def __init__(self, recorder: StoreRecorder, staged: Callable[[str], bytes],
                 result: Ingested) -> None:
        self.recorder = recorder
        self.staged = staged
        self.result = result

    def started(self, run_id: int, run: Mapping[str, Any]) -> None:
        name = run.get("name")
        if name:
            self.recorder.set_tags(run_id, {"mlops.notebook_run_name": str(name)})

    def log_params(self, run_id: int, params: dict[str, str]) -> None:
        self.recorder.log_params(run_id, params)

    def set_tags(self, run_id: int, tags: dict[str, str]) -> None:
        self.recorder.set_tags(run_id, tags)

    def log_metrics(self, run_id: int,
                    points: list[tuple[str, float, int | None, float]]) -> None:
        self.recorder.log_metrics(run_id, points)

    def log_dataset(self, run_id: int, version: DatasetVersion, role: str,
                    source: str) -> None:
        self.recorder.log_dataset(run_id, version, role, source)

    def link_artifact(self, run_id: int, record: Mapping[str, Any]) -> None:
        self.recorder.put_bytes(run_id, record["name"], self.staged(record["digest"]),
                                record["kind"])

    def register_model(self, run_id: int, record: Mapping[str, Any]) -> ModelVersion:
        return self.recorder.register_model(run_id, record["name"],
                                            self.staged(record["digest"]), record["flavor"],
                                            record.get("signature"), record.get("profile"))

    def log_predictions(self, run_id: int, record: Mapping[str, Any]) -> None:
        import io

        import pandas as pd

        frame = pd.read_parquet(io.BytesIO(self.staged(record["digest"])))
        self.recorder.log_predictions(run_id, record["name"], frame)

    def heartbeat(self, run_id: int, at: float) -> None:
        return None  # a step never glues one (the runner watches its kernel)

    def set_source(self, run_id: int, notebook: str | None, code_digest: str | None) -> None:
        return None  # nor this: the runner records the step's notebook

    def ended(self, run_id: int, status: str, error: str | None) -> None:
        self.result.status = status
        self.result.error = error
