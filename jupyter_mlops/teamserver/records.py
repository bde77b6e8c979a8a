"""POST /api/v1/records: a batch of one run's records, applied exactly once.

Each record is what a pipeline step glues (`validation.check_glued_record`)
plus `seq`, its number in the run's stream; the remote client also sends
`heartbeat` and `source`, checked here. The whole batch is checked before
anything is applied; then, in one `Store.transaction()`, records at or below
the stream's mark are skipped (a retried batch adds nothing), the rest are
replayed through `pipelines.ingest.replay` (the one replay path), and the mark
moves. So a server killed mid-batch has applied all of it or none of it.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..artifacts import ArtifactStore
from ..capture import environment_of
from ..errors import Conflict, InvalidInput, MlopsError, NotFound, PermissionDenied
from ..pipelines.ingest import replay
from ..recorders import RECORD_VERSION
from ..store import Store
from ..store.ids import MAX_INTEGER
from ..store.records import DatasetVersion, ModelVersion
from ..store.runs import NewRun
from ..team_protocol import MAX_RECORDS_PER_BATCH, PayloadTooLarge
from ..validation import (
    MAX_TEXT_LENGTH,
    RecordRefused,
    check_digest,
    check_glued_record,
    display_problem,
)

STREAM = re.compile(r"[0-9a-f]{32}")
BLOB_OPS = ("artifact", "model", "predictions")
MAX_SEQ = 2**62
MAX_TIME = 1e12  # seconds: year 33,658


class SequenceGap(Conflict):
    """A batch starts past the stream's mark + 1: records in between are missing."""

    def __init__(self, stream: str, applied_seq: int, first: int) -> None:
        self.applied_seq = applied_seq
        super().__init__(f"stream {stream}: records up to {applied_seq} are applied and this "
                         f"batch starts at {first}; send {applied_seq + 1} to {first - 1} first")


def _check_heartbeat(record: Mapping[str, Any]) -> None:
    at = record.get("at")
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        raise InvalidInput(f"heartbeat 'at' must be a time in seconds, got {str(at)[:80]!r}")


def _check_source(record: Mapping[str, Any]) -> None:
    notebook = record.get("notebook")
    if notebook is not None:
        if not isinstance(notebook, str) or not notebook or len(notebook) > MAX_TEXT_LENGTH:
            raise InvalidInput(f"source 'notebook' must be a path or null, got "
                               f"{str(notebook)[:80]!r}")
        if (problem := display_problem(notebook)) is not None:
            raise InvalidInput(f"source 'notebook' {notebook[:80]!r} refused: {problem}")
    if record.get("code_digest") is not None:
        check_digest(record["code_digest"], "source 'code_digest'")


REMOTE_CHECKS = {"heartbeat": _check_heartbeat, "source": _check_source}


def check_record(record: object) -> dict[str, Any]:
    """One record of a batch: `seq` (1 to 2**62) and the glued record's schema.
    Raises `RecordRefused` naming the record's seq and the problem."""
    if type(record) is not dict and not isinstance(record, Mapping):  # dict: no ABC check
        raise RecordRefused("?", f"expected an object, got {type(record).__name__}")
    seq = record.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
        raise RecordRefused("?", f"'seq' must be an integer from 1 to {MAX_SEQ}, got "
                                 f"{str(seq)[:40]!r}")
    name = f"seq {seq}"
    op = record.get("op")
    if op in REMOTE_CHECKS:
        if record.get("version") != RECORD_VERSION:
            raise RecordRefused(name, f"unknown record version {str(record.get('version'))[:40]!r}"
                                      f" (this server reads version {RECORD_VERSION})")
        try:
            REMOTE_CHECKS[op](record)
        except InvalidInput as exc:
            raise RecordRefused(name, str(exc)) from None
    else:
        check_glued_record(name, record, RECORD_VERSION)
    if op == "start":
        _new_run(record["run"], "0" * 32, "-")  # its fields' types, before anything is applied
    elif op == "metrics":
        for key, _, step, at in record["points"]:
            if step is not None and not -MAX_INTEGER - 1 <= step <= MAX_INTEGER:
                raise RecordRefused(name, f"step of metric {key!r} is out of range: {step}")
            _check_time(at, f"time of metric {key!r}", name)
    elif op == "heartbeat":
        _check_time(record["at"], "heartbeat 'at'", name)
    return dict(record)


def _check_time(at: object, what: str, name: str) -> None:
    """A time in seconds since 1970: a finite number within what a float column holds."""
    if isinstance(at, int) and not isinstance(at, bool) and abs(at) > MAX_TIME:
        raise RecordRefused(name, f"{what} is out of range: {at}")
    if isinstance(at, float) and not math.isfinite(at):
        raise RecordRefused(name, f"{what} must be finite, got {at}")


def check_batch(body: object) -> tuple[str, list[dict[str, Any]]]:
    """The stream and the records of a batch body, every record checked, the seqs
    consecutive. Raises `InvalidInput` (`RecordRefused`) or `PayloadTooLarge`."""
    if not isinstance(body, Mapping):
        raise InvalidInput('the body must be {"stream": RUN_UUID, "records": [...]}')
    stream = body.get("stream")
    if not isinstance(stream, str) or not STREAM.fullmatch(stream):
        raise InvalidInput(f"'stream' must be the run's uuid (32 lowercase hex digits), got "
                           f"{str(stream)[:80]!r}")
    records = body.get("records")
    if not isinstance(records, list) or not records:
        raise InvalidInput("'records' must be a non-empty list")
    if len(records) > MAX_RECORDS_PER_BATCH:
        raise PayloadTooLarge(f"{len(records)} records in one batch: send at most "
                              f"{MAX_RECORDS_PER_BATCH}")
    checked = [check_record(record) for record in records]
    first = checked[0]["seq"]
    for index, record in enumerate(checked):
        if record["seq"] != first + index:
            raise InvalidInput(f"the seqs of a batch must be consecutive: record {index} has "
                               f"seq {record['seq']}, expected {first + index}")
        if record["op"] == "start" and record["seq"] != 1:
            raise RecordRefused(f"seq {record['seq']}", "a 'start' record must be seq 1")
    return stream, checked


_RUN_TEXT = ("name", "source_kind", "notebook", "code_digest", "git_commit", "git_branch",
             "python", "env_digest", "host")


def _new_run(run: Mapping[str, Any], stream: str, user: str) -> NewRun:
    """The run a `start` record creates: its fields checked, the uuid the stream's, the
    user the token's (whatever the client wrote)."""
    known = {f.name for f in fields(NewRun)}
    values = {k: v for k, v in run.items() if k in known}
    for key in _RUN_TEXT:
        value = values.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT_LENGTH):
            raise InvalidInput(f"start: run {key} must be a string or null, got "
                               f"{str(value)[:80]!r}")
    if not values.get("source_kind"):
        values["source_kind"] = "remote"
    started = values.get("started_at")
    if isinstance(started, bool) or not isinstance(started, (int, float)) \
            or not math.isfinite(started) or abs(started) > MAX_TIME:
        raise InvalidInput(f"start: run started_at must be a time in seconds, got "
                           f"{str(started)[:80]!r}")
    if values.get("git_dirty") is not None and not isinstance(values["git_dirty"], bool):
        raise InvalidInput("start: run git_dirty must be true, false or null")
    pid = values.get("pid")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int)
                            or not 0 <= pid < 2**31):
        raise InvalidInput(f"start: run pid must be a process id or null, got {str(pid)[:40]!r}")
    values["uuid"] = stream
    values["user"] = user
    values.setdefault("name", None)
    return NewRun(**values)


@dataclass(frozen=True)
class _Home:
    """What `PredictionLog` reads of a project: where its `predictions/` folder is."""

    home: Path


class ServerTarget:
    """Where a client's records go on the server: straight into the store, files
    already in the artifact store (uploaded first), the token's user as the actor."""

    def __init__(self, store: Store, user: str, artifacts: ArtifactStore | None = None,
                 home: Path | None = None) -> None:
        self.store = store
        self.user = user
        self.artifacts = artifacts
        self.home = home  # prediction batches go to HOME/predictions/NAME/

    def started(self, run_id: int, run: Mapping[str, Any]) -> None:
        return None  # `apply_batch` created the run when it bound the stream

    def log_params(self, run_id: int, params: dict[str, str]) -> None:
        self.store.runs.log_params(run_id, params)

    def set_tags(self, run_id: int, tags: dict[str, str]) -> None:
        self.store.runs.set_tags(run_id, tags)

    def log_metrics(self, run_id: int,
                    points: list[tuple[str, float, int | None, float]]) -> None:
        self.store.runs.log_metrics(run_id, points)

    def log_dataset(self, run_id: int, version: DatasetVersion, role: str,
                    source: str) -> None:
        self.store.datasets.link(run_id, version, role, source)

    def link_artifact(self, run_id: int, record: Mapping[str, Any]) -> None:
        self.store.artifacts.link(run_id, record["name"], record["digest"], record["size"],
                                  record["kind"])

    def register_model(self, run_id: int, record: Mapping[str, Any]) -> ModelVersion:
        inputs = [d.dataset.digest for d in self.store.datasets.for_run(run_id, role="input")]
        return self.store.models.register(
            record["name"], digest=record["digest"], flavor=record["flavor"], run_id=run_id,
            signature=record.get("signature"), input_datasets=inputs, actor=self.user,
            size=record["size"], profile=record.get("profile"))

    def log_predictions(self, run_id: int, record: Mapping[str, Any]) -> None:
        """A batch of prediction-log rows (a Parquet blob) into the server's log."""
        if self.artifacts is None or self.home is None:
            raise InvalidInput("this server takes no 'predictions' records")
        import pandas as pd

        from ..monitoring.predlog import PredictionLog

        try:
            with self.artifacts.open(record["digest"]) as blob:
                frame = pd.read_parquet(blob)
        except MlopsError:
            raise
        except Exception as exc:  # whatever the bytes are, the client's fault
            raise InvalidInput(f"predictions {record['digest']} is not a Parquet table: "
                               f"{type(exc).__name__}: {str(exc)[:200]}") from None
        if len(frame) != record["rows"]:
            raise InvalidInput(f"predictions {record['digest']} holds {len(frame)} rows, "
                               f"the record says {record['rows']}")
        try:
            source = "service" if self.store.runs.get(run_id).source_kind == "serving" \
                else "batch"  # `mlops serve`'s own run, or a scoring pipeline's step
            PredictionLog(_Home(self.home)).write(self.store, record["name"], frame, source)
        except MlopsError:
            raise
        except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
            raise InvalidInput(f"predictions {record['digest']} are not prediction-log rows "
                               f"(request_id, at, version, status, ...): "
                               f"{type(exc).__name__}: {str(exc)[:200]}") from None

    def heartbeat(self, run_id: int, at: float) -> None:
        self.store.runs.heartbeat(run_id, at)

    def set_source(self, run_id: int, notebook: str | None, code_digest: str | None) -> None:
        self.store.runs.update_source(run_id, notebook=notebook, code_digest=code_digest)

    def ended(self, run_id: int, status: str, error: str | None) -> None:
        self.store.runs.end(run_id, status, error)


def apply_batch(store: Store, artifacts: ArtifactStore, user: str, stream: str,
                records: list[dict[str, Any]], home: Path | None = None) -> dict[str, Any]:
    """Apply a checked batch (`check_batch`) of stream `stream` for `user`, exactly once.

    Returns `{"run_id", "applied_seq", "models": [{"seq", "name", "version"}],
    "warnings"}`: the models of the batch's records (the skipped ones too), and
    the records the store refused as conflicting with what it holds (a param
    logged again with another value): each is undone alone and the rest applied,
    as for a pipeline step. Raises
    `PermissionDenied` when the stream is another user's, `SequenceGap` (409,
    with the mark), `Conflict` for a blob the server lacks or a first record
    that is not `start`, and what a record's store call raises; then nothing
    of the batch is kept. `predictions` records are written to the log under
    `home/predictions/` (refused without a `home`).
    """
    with store.transaction():
        bound = store.streams.get(stream)
        mark = 0 if bound is None else bound.applied_seq
        if bound is not None and bound.user != user:
            raise PermissionDenied(f"stream {stream} (run {bound.run_id}) belongs to user "
                                   f"{bound.user!r}; {user!r} may not write into it")
        new = [record for record in records if record["seq"] > mark]
        first, last = records[0]["seq"], records[-1]["seq"]
        if new and new[0]["seq"] != mark + 1:
            raise SequenceGap(stream, mark, new[0]["seq"])
        _check_blobs(artifacts, new)
        if new and bound is None:
            if new[0]["op"] != "start":
                raise Conflict(f"stream {stream} is new: its first record (seq 1) must be "
                               f"'start', got {new[0]['op']!r}")
            if _run_exists(store, stream):
                raise Conflict(f"a run with uuid {stream} exists already and has no stream "
                               "here: start a new run")
            run = _new_run(new[0]["run"], stream, user)
            environment = new[0].get("environment")
            if environment is not None:  # its digest is the server's, not the client's word
                known = environment_of(environment["python"], environment["packages"])
                store.environments.save(known)
                run = replace(run, env_digest=known.digest, python=known.python)
            elif run.env_digest is not None and store.environments.get(run.env_digest) is None:
                run = replace(run, env_digest=None)  # an environment this server never got
            run_id = store.runs.create(run)
            bound = store.streams.bind(stream, run_id, user)
        assert bound is not None
        models = [{"seq": seq, "name": name, "version": version}
                  for seq, name, version in store.streams.models(stream, first, min(last, mark))]
        target = ServerTarget(store, user, artifacts, home)
        warnings: list[str] = []
        for record in _merged_metrics(new):
            try:
                version = replay(record, target, bound.run_id)
            except Conflict as exc:  # as for a pipeline step: that record only is undone
                warnings.append(f"seq {record['seq']} ({record['op']}): {exc}")
                continue
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"seq {record['seq']} ({record['op']}) refused by the "
                               f"store: {exc}") from None
            except OverflowError as exc:  # a number no column holds: nothing applied
                raise InvalidInput(f"seq {record['seq']} ({record['op']}): {exc}") from None
            if version is not None:
                store.streams.note_model(stream, record["seq"], version.name, version.version)
                models.append({"seq": record["seq"], "name": version.name,
                               "version": version.version})
        applied = max(mark, last)
        if new:
            store.streams.advance(stream, applied)
    return {"run_id": bound.run_id, "applied_seq": applied, "models": models,
            "warnings": warnings}


def _merged_metrics(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records, consecutive `metrics` records merged into one (their points in
    order): a client sends one per `log_metric`, and one store call per run of them
    is what makes a batch of 10,000 points one insert instead of 10,000."""
    merged: list[dict[str, Any]] = []
    for record in records:
        if record["op"] == "metrics" and merged and merged[-1]["op"] == "metrics":
            merged[-1]["points"].extend(record["points"])
        elif record["op"] == "metrics":
            merged.append({**record, "points": list(record["points"])})  # extended in place
        else:
            merged.append(record)
    return merged


def _run_exists(store: Store, uuid: str) -> bool:
    try:
        store.runs.resolve(uuid)  # a full uuid matches itself only
    except NotFound:
        return False
    return True


def _check_blobs(artifacts: ArtifactStore, records: list[dict[str, Any]]) -> None:
    """Every blob the records name is in the artifact store, with the size they say."""
    for record in records:
        if record["op"] not in BLOB_OPS:
            continue
        size = artifacts.stored_size(record["digest"])
        if size is None:
            raise Conflict(f"seq {record['seq']} ({record['op']}) names blob "
                           f"{record['digest']}, which the server does not have: upload it "
                           "first (PUT /api/v1/blobs/DIGEST)")
        if record.get("size") is not None and record["size"] != size:
            raise InvalidInput(f"seq {record['seq']} ({record['op']}) says blob "
                               f"{record['digest']} is {record['size']} bytes; it is {size}")
