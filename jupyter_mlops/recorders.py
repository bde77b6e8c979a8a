"""Where a run's records go: straight to the store, or glued into the notebook.

`StoreRecorder` writes to the project's store and artifact folder (an
interactive session, a script). `GlueRecorder` is used inside a pipeline step:
every record becomes a scrapbook scrap in the output notebook, and files
(artifacts, models) are copied into the step's outbox folder, so the step
needs no database. The pipeline runner later replays the glued records through
a `StoreRecorder` (`jupyter_mlops.pipelines.ingest`): one set of store calls.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import blake3

from .artifacts import ArtifactStore
from .errors import MlopsError
from .glue import RECORD_PREFIX, glue
from .hashing import StatCache, digest_bytes, format_digest, open_regular
from .project import make_dirs, modes_for
from .store import Store
from .store.records import ArtifactLink, DatasetVersion, Environment, ModelVersion
from .store.runs import NewRun
from .validation import check_artifact_name, check_step_tags, metric_to_json

OUTBOX_ENV = "MLOPS_STEP_OUTBOX"  # set by the pipeline runner for a step's kernel
RECORD_VERSION = 1


class Recorder(Protocol):
    """The calls an `ActiveRun` makes; `run_id` is None inside a pipeline step."""

    stat_cache: StatCache | None
    in_step: bool  # records into a pipeline step's notebook: the runner captures git and env

    def start(self, new: NewRun, environment: Environment | None = None) -> int | None: ...
    def heartbeat(self, run_id: int | None) -> None: ...
    def log_params(self, run_id: int | None, params: dict[str, str]) -> None: ...
    def set_tags(self, run_id: int | None, tags: dict[str, str]) -> None: ...
    def log_metrics(self, run_id: int | None,
                    points: list[tuple[str, float, int | None, float]]) -> None: ...
    def log_dataset(self, run_id: int | None, version: DatasetVersion, role: str,
                    source: str) -> None: ...
    def known_dataset(self, digest: str) -> DatasetVersion | None: ...
    def input_datasets(self, run_id: int | None) -> list[DatasetVersion]: ...
    def put_file(self, run_id: int | None, name: str, path: Path, kind: str) -> ArtifactLink: ...
    def put_files(self, run_id: int | None, files: list[tuple[str, Path]], kind: str
                  ) -> list[ArtifactLink]: ...
    def put_bytes(self, run_id: int | None, name: str, data: bytes, kind: str
                  ) -> ArtifactLink: ...
    def register_model(self, run_id: int | None, name: str, data: bytes, flavor: str,
                       signature: dict[str, Any] | None,
                       profile: dict[str, Any] | None = None) -> ModelVersion: ...
    def log_predictions(self, run_id: int | None, name: str, frame: Any) -> None: ...
    def end(self, run_id: int | None, status: str, error: str | None, notebook: str | None,
            code_digest: str | None) -> None: ...


class StoreRecorder:
    """Records straight into the store; every call commits before it returns."""

    in_step = False

    def __init__(self, store: Store, artifacts: ArtifactStore,
                 stat_cache: StatCache | None = None, predictions: Any = None) -> None:
        self.store = store
        self.artifacts = artifacts
        self.stat_cache = stat_cache
        self.predictions = predictions  # a monitoring PredictionLog

    def log_predictions(self, run_id, name, frame) -> None:  # noqa: ANN001
        if self.predictions is None:
            raise MlopsError("this recorder has no prediction log")
        self.predictions.write(self.store, name, frame, "batch")

    def start(self, new: NewRun, environment: Environment | None = None) -> int:
        if environment is not None:
            self.store.environments.save(environment)
        return self.store.runs.create(new)

    def heartbeat(self, run_id: int | None) -> None:
        self.store.runs.heartbeat(run_id)

    def log_params(self, run_id, params) -> None:  # noqa: ANN001 - see Recorder
        self.store.runs.log_params(run_id, params)

    def set_tags(self, run_id, tags) -> None:  # noqa: ANN001
        self.store.runs.set_tags(run_id, tags)

    def log_metrics(self, run_id, points) -> None:  # noqa: ANN001
        self.store.runs.log_metrics(run_id, points)

    def log_dataset(self, run_id, version, role, source) -> None:  # noqa: ANN001
        self.store.datasets.link(run_id, version, role, source)

    def known_dataset(self, digest: str) -> DatasetVersion | None:
        return self.store.datasets.get(digest)

    def input_datasets(self, run_id) -> list[DatasetVersion]:  # noqa: ANN001
        return [d.dataset for d in self.store.datasets.for_run(run_id, role="input")]

    def put_file(self, run_id, name, path, kind) -> ArtifactLink:  # noqa: ANN001
        check_artifact_name(name)  # every name stored passes here, whatever its door
        digest, size = self.artifacts.put_file(path)
        link = self.store.artifacts.link(run_id, name, digest, size, kind)
        self.artifacts.ensure_present(digest, lambda: self.artifacts.put_file(path))
        return link

    def put_files(self, run_id, files, kind) -> list[ArtifactLink]:  # noqa: ANN001
        """Store every file, then link them all in one transaction: all or nothing.

        A folder's files (`hashing.FolderFile`) are checked to be the files
        listed as each is opened; a file swapped since (`FolderChanged`), or
        any other error, leaves the run with none of them.
        """
        for name, _ in files:
            check_artifact_name(name)
        stored = [(name, path, *self.artifacts.put_file(path)) for name, path in files]
        links = self.store.artifacts.link_many(
            [ArtifactLink(run_id=run_id, name=name, digest=digest, size=size, kind=kind)
             for name, _, digest, size in stored])
        for _, path, digest, _ in stored:
            self.artifacts.ensure_present(digest, lambda p=path: self.artifacts.put_file(p))
        return links

    def put_bytes(self, run_id, name, data, kind) -> ArtifactLink:  # noqa: ANN001
        check_artifact_name(name)
        digest, size = self.artifacts.put_bytes(data)
        link = self.store.artifacts.link(run_id, name, digest, size, kind)
        self.artifacts.ensure_present(digest, lambda: self.artifacts.put_bytes(data))
        return link

    def keep_file(self, path: Path) -> tuple[str, int]:
        """Store a file that belongs to no run yet (a step's declared output)."""
        digest, size = self.artifacts.put_file(path)
        self.store.artifacts.record(digest, size)
        self.artifacts.ensure_present(digest, lambda: self.artifacts.put_file(path))
        return digest, size

    def register_model(self, run_id, name, data, flavor, signature,  # noqa: ANN001
                       profile=None) -> ModelVersion:  # noqa: ANN001
        digest, size = self.artifacts.put_bytes(data)
        inputs = [d.digest for d in self.input_datasets(run_id)]
        actor = self.store.runs.get(run_id).user if run_id is not None else None
        # One transaction: the version, its blob record and run link, its profile.
        version = self.store.models.register(name, digest=digest, flavor=flavor, run_id=run_id,
                                             signature=signature, input_datasets=inputs,
                                             actor=actor or "unknown", size=size,
                                             profile=profile)
        # gc may have removed the blob between put_bytes and the commit that refers to it.
        self.artifacts.ensure_present(digest, lambda: self.artifacts.put_bytes(data))
        return version

    def end(self, run_id, status, error, notebook, code_digest) -> None:  # noqa: ANN001
        if notebook is not None or code_digest is not None:
            self.store.runs.update_source(run_id, notebook=notebook, code_digest=code_digest)
        self.store.runs.end(run_id, status, error)


class GlueRecorder:
    """Glues each record into the output notebook; files go to the step's outbox."""

    stat_cache = None  # a step touches no project database, not even the stat cache
    in_step = True

    def __init__(self, outbox: str | os.PathLike[str]) -> None:
        self.outbox = Path(outbox)
        self._counter = itertools.count(1)
        self._inputs: list[DatasetVersion] = []

    def _record(self, op: str, **fields: Any) -> dict[str, Any]:
        """The record of one call: what a step glues and what a team client sends."""
        return {"version": RECORD_VERSION, "op": op, **fields}

    def _glue(self, op: str, **fields: Any) -> None:
        self._emit(self._record(op, **fields))

    def _emit(self, record: dict[str, Any]) -> None:
        """Where a record goes: a scrap of the output notebook (`RemoteRecorder`: the queue)."""
        glue(f"{RECORD_PREFIX}{next(self._counter):06d}", record)

    def _stage(self, path: Path | None, data: bytes | None) -> tuple[str, int]:
        """Copy bytes into the outbox under their digest; return (digest, size).

        A file is read once, through an fd opened with `O_NOFOLLOW` (a link is
        refused), hashed while it is copied to a temporary, then renamed. Staged
        files take the mode of the outbox's folder (0600 in a private project).
        """
        make_dirs(self.outbox)
        fd, tmp = tempfile.mkstemp(dir=self.outbox, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), modes_for(self.outbox)[1])
                if data is None:
                    assert path is not None
                    digest, size = _copy_hashing(path, out)
                else:
                    digest, size = digest_bytes(data), len(data)
                    out.write(data)
            os.replace(tmp, self.outbox / digest.replace(":", "-"))
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        return digest, size

    def start(self, new: NewRun, environment: Environment | None = None) -> int | None:
        """Glue the start; a step's environment is the runner's to record (`environment`
        is None in a step)."""
        self._glue("start", run=asdict(new))
        return None

    def heartbeat(self, run_id: None) -> None:
        return None  # the runner watches the step's kernel

    def log_params(self, run_id, params) -> None:  # noqa: ANN001
        self._glue("params", params=params)

    def set_tags(self, run_id, tags) -> None:  # noqa: ANN001
        check_step_tags(tags)  # `mlops.*` is the runner's; ingest refuses it too
        self._glue("tags", tags=tags)

    def log_metrics(self, run_id, points) -> None:  # noqa: ANN001
        self._glue("metrics", points=[[key, metric_to_json(value), step, at]
                                      for key, value, step, at in points])

    def log_dataset(self, run_id, version, role, source) -> None:  # noqa: ANN001
        if role == "input":
            self._inputs.append(version)
        self._glue("dataset", dataset=asdict(version), role=role, source=source)

    def known_dataset(self, digest: str) -> None:
        return None

    def input_datasets(self, run_id) -> list[DatasetVersion]:  # noqa: ANN001
        return list(self._inputs)

    def put_file(self, run_id, name, path, kind) -> ArtifactLink:  # noqa: ANN001
        [link] = self.put_files(run_id, [(name, path)], kind)
        return link

    def put_files(self, run_id, files, kind) -> list[ArtifactLink]:  # noqa: ANN001
        """Stage every file, then glue their records: a file that fails leaves no record."""
        for name, _ in files:
            check_artifact_name(name)
        staged = [(name, *self._stage(path, None)) for name, path in files]
        links = []
        for name, digest, size in staged:
            self._glue("artifact", name=name, digest=digest, size=size, kind=kind)
            links.append(ArtifactLink(run_id=run_id, name=name, digest=digest, size=size,
                                      kind=kind))
        return links

    def put_bytes(self, run_id, name, data, kind) -> ArtifactLink:  # noqa: ANN001
        digest, size = self._stage(None, data)
        self._glue("artifact", name=name, digest=digest, size=size, kind=kind)
        return ArtifactLink(run_id=run_id, name=name, digest=digest, size=size, kind=kind)

    def register_model(self, run_id, name, data, flavor, signature,  # noqa: ANN001
                       profile=None) -> ModelVersion:  # noqa: ANN001
        digest, size = self._stage(None, data)
        self._glue("model", name=name, digest=digest, size=size, flavor=flavor,
                   signature=signature, profile=profile)
        return ModelVersion(name=name, version=None, run_id=None, digest=digest, flavor=flavor,
                            signature=signature, created_at=0.0,
                            input_datasets=tuple(d.digest for d in self._inputs))

    def log_predictions(self, run_id, name, frame) -> None:  # noqa: ANN001
        import io

        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        digest, size = self._stage(None, buffer.getvalue())
        self._glue("predictions", name=name, digest=digest, rows=len(frame))

    def end(self, run_id, status, error, notebook, code_digest) -> None:  # noqa: ANN001
        self._glue("end", status=status, error=error)


def _copy_hashing(path: Path, out: Any) -> tuple[str, int]:
    """Copy `path` into `out` while hashing, opened by `hashing.open_regular`: a link
    (`InvalidInput`), a FIFO or device (`NotRegularFile`) or a folder's file swapped
    since it was listed (`FolderChanged`) is refused before a byte is read."""
    fd, _ = open_regular(path, follow=False)
    hasher = blake3.blake3()
    size = 0
    with os.fdopen(fd, "rb") as src:
        while chunk := src.read(1 << 20):
            hasher.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return format_digest(hasher.hexdigest()), size
