"""Replaying what a step glued into its output notebook, through the store calls.

Records named `mlops.record.*` (written by `GlueRecorder`) become params,
metrics, datasets, artifacts and model versions of the step's run; every other
scrap is one of the step's outputs, which later steps can reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import Conflict, InvalidInput
from ..glue import RECORD_PREFIX, read_scraps
from ..recorders import RECORD_VERSION, StoreRecorder
from ..store.records import DatasetVersion
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
    for record in records:
        try:
            _replay(record, recorder, run_id, staged, result)
        except Conflict as exc:
            result.warnings.append(str(exc))
    return result


def _replay(record: dict[str, Any], recorder: StoreRecorder, run_id: int,
            staged: Callable[[str], bytes], result: Ingested) -> None:
    op = record["op"]
    if op == "start":
        name = (record.get("run") or {}).get("name")
        if name:
            recorder.set_tags(run_id, {"mlops.notebook_run_name": str(name)})
    elif op == "params":
        recorder.log_params(run_id, record["params"])
    elif op == "tags":
        recorder.set_tags(run_id, record["tags"])
    elif op == "metrics":
        recorder.log_metrics(run_id, [(key, metric_from_json(value), step, at)
                                      for key, value, step, at in record["points"]])
    elif op == "dataset":
        recorder.log_dataset(run_id, DatasetVersion(**record["dataset"]), record["role"],
                             record["source"])
    elif op == "artifact":
        recorder.put_bytes(run_id, record["name"], staged(record["digest"]), record["kind"])
    elif op == "model":
        version = recorder.register_model(run_id, record["name"], staged(record["digest"]),
                                          record["flavor"], record.get("signature"),
                                          record.get("profile"))
        result.models.append(version.ref)
    elif op == "predictions":
        import io

        import pandas as pd

        frame = pd.read_parquet(io.BytesIO(staged(record["digest"])))
        recorder.log_predictions(run_id, record["name"], frame)
    elif op == "end":
        result.status = record.get("status")
        result.error = record.get("error")
    else:
        raise InvalidInput(f"unknown record operation {op!r}")
