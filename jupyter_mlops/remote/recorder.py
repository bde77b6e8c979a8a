"""`RemoteRecorder`: a run recorded into the team server.

It is a `GlueRecorder` whose records go to the server instead of the notebook:
the same record for every call (one encoder, one validator on the server, the
one `pipelines.ingest` uses), numbered per run (the stream is the run's uuid)
so a batch sent twice adds nothing. `start` waits for the server (the run id
is needed at once) and `register_model` for the version number; the rest is
queued (`queue.RecordQueue`) and sent by a thread. Files are uploaded before
the record naming them is queued, only when the server lacks their digest; if
the server does not answer they are staged in the spool and uploaded later.
"""

from __future__ import annotations

import io
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import MlopsError
from ..hashing import StatCache, _hash_fd, digest_bytes, open_regular, timestamp_granularity_ns
from ..recorders import GlueRecorder
from ..store.records import Environment, ModelVersion
from ..store.runs import NewRun
from ..validation import metric_to_json
from .client import Client, retryable
from .queue import RecordQueue, tell
from .spool import Spool

MAX_POINTS_PER_RECORD = 1000  # a metrics record's points, joined while it waits


class RemoteRecorder(GlueRecorder):
    """Records one run at a time into a team server (see the module's docstring)."""

    in_step = False  # a notebook's or script's own run: git and environment are captured

    def __init__(self, client: Client, spool: Spool, *, stat_cache: StatCache | None = None,
                 ack_timeout: float = 30.0, queue: RecordQueue | None = None) -> None:
        super().__init__(spool.blobs)
        self.client = client
        self.spool = spool
        self.stat_cache = stat_cache  # type: ignore[assignment]
        self.ack_timeout = ack_timeout
        self.queue = queue or RecordQueue(client, spool)
        self.stream: str | None = None
        self.seq = 0
        self.run_id: int | None = None
        self.unacknowledged = 0  # records the server had not taken when the run ended
        self._lock = threading.Lock()  # the heartbeat thread emits too: seq and order agree
        self._open_metrics: dict[str, Any] | None = None  # may still grow (log_metrics)

    def _emit(self, record: dict[str, Any]) -> None:
        if self.stream is None:
            raise MlopsError("no run started on this recorder")
        with self._lock:
            self.seq += 1
            record["seq"] = self.seq
            self.queue.put(self.stream, record)

    def log_metrics(self, run_id, points) -> None:  # noqa: ANN001
        """Points join the run's last queued `metrics` record while the sender has not
        taken it (up to `MAX_POINTS_PER_RECORD`), else make a new record."""
        if self.stream is None:
            raise MlopsError("no run started on this recorder")
        rows = [[key, metric_to_json(value), step, at] for key, value, step, at in points]
        with self._lock:
            if self._open_metrics is not None and self.queue.extend_tail(
                    self._open_metrics, rows, MAX_POINTS_PER_RECORD):
                return
            self.seq += 1
            record = self._record("metrics", points=rows)
            record["seq"] = self.seq
            self.queue.put(self.stream, record, open_points=True)
            self._open_metrics = record

    def start(self, new: NewRun, environment: Environment | None = None) -> int:
        """Create the run on the server (synchronously) and return its id. The
        environment travels in the start record; the server recomputes its digest.

        Raises `ServerUnreachable`, `AuthenticationFailed`, `PermissionDenied` (a
        token without the `record` permission): no run starts.
        """
        record = self._record("start", run=asdict(new))
        if environment is not None:
            record["environment"] = {"python": environment.python,
                                     "packages": dict(environment.packages)}
        record["seq"] = 1
        answer = self.client.send_records(new.uuid, [record])
        run_id = answer.get("run_id")
        if not isinstance(run_id, int):
            raise MlopsError(f"team server {self.client.url} started a run but gave no run id "
                             f"({str(answer)[:80]})")
        self.stream, self.seq, self.run_id = new.uuid, 1, run_id
        self._inputs = []
        self.queue.run_ids[new.uuid] = run_id
        self.queue.note(new.uuid, answer)
        return run_id

    def heartbeat(self, run_id: int | None) -> None:
        self._glue("heartbeat", at=time.time())

    def known_dataset(self, digest: str) -> None:
        return None  # a local file is hashed (the stat cache spares unchanged ones)

    def _stage(self, path: Path | None, data: bytes | None) -> tuple[str, int]:
        """Upload a file or bytes unless the server has them; (digest, size).

        When the server does not answer, the bytes are copied into the spool
        (`GlueRecorder._stage`, hashing as it copies) and uploaded before the
        record that names them.
        """
        try:
            return self._upload(path, data)
        except MlopsError as exc:
            if not retryable(exc):
                raise
            self.queue.outage(exc)
            return super()._stage(path, data)

    def upload_file(self, path: Path) -> tuple[str, int]:
        """Upload a file that no record names (a pipeline step's declared output) unless
        the server has it; (digest, size). Raises `ServerUnreachable` (nothing staged)."""
        return self._upload(path, None)

    def _upload(self, path: Path | None, data: bytes | None) -> tuple[str, int]:
        if data is not None:
            digest = digest_bytes(data)
            if self.client.missing([digest]):
                self.client.put_blob(digest, io.BytesIO(data), len(data))
            return digest, len(data)
        assert path is not None
        started_ns = time.time_ns()
        fd, st = open_regular(path, follow=False)
        with os.fdopen(fd, "rb") as source:
            key = str(path)
            digest = self.stat_cache.get(key, st) if self.stat_cache is not None else None
            if digest is None:
                digest = _hash_fd(source.fileno(), st.st_size)
                if (self.stat_cache is not None
                        and st.st_mtime_ns < started_ns - timestamp_granularity_ns(st)):
                    self.stat_cache.put(key, st, digest)
            if self.client.missing([digest]):
                source.seek(0)
                self.client.put_blob(digest, source, st.st_size)  # hashed again as it goes
        return digest, st.st_size

    def register_model(self, run_id, name, data, flavor, signature,  # noqa: ANN001
                       profile=None) -> ModelVersion:  # noqa: ANN001
        """Upload the model, queue its record and wait for the version the server gives.

        When the server can't answer within the ack timeout the record stays
        queued or spooled and the version comes back as None (`ref` shows NAME:(pending)).
        """
        staged = super().register_model(run_id, name, data, flavor, signature, profile)
        seq = self.seq
        assert self.stream is not None
        version = None
        if self.queue.wait_acked(self.stream, seq, self.ack_timeout):
            version = self.queue.models.get((self.stream, seq))
        else:
            tell(f"jupyter-mlops: model {name} is not registered on {self.client.url} yet: its "
                 "record is kept in the spool and `mlops sync` sends it")
        return ModelVersion(name=name, version=version, run_id=run_id, digest=staged.digest,
                            flavor=flavor, signature=signature, created_at=time.time(),
                            input_datasets=staged.input_datasets)

    def end(self, run_id, status, error, notebook, code_digest) -> None:  # noqa: ANN001
        """Queue the source and end records, then wait for the server to take every
        record of the run (`ack_timeout`); what it has not taken by then stays in the
        spool, and the user is told how many records and that `mlops sync` sends them."""
        if notebook is not None or code_digest is not None:
            self._glue("source", notebook=notebook, code_digest=code_digest)
        self._glue("end", status=status, error=error)
        assert self.stream is not None
        if self.queue.wait_acked(self.stream, self.seq, self.ack_timeout):
            self.unacknowledged = 0
            return
        self.queue.flush()
        self.unacknowledged = self.seq - self.queue.acked.get(self.stream, 0)
        if self.queue.refused(self.stream):
            return  # refused, not pending: the user was told why and where they are kept
        tell(f"jupyter-mlops: run {run_id} ended, but the team server {self.client.url} has "
             f"not taken {self.unacknowledged} of its records after {self.ack_timeout:g} s; "
             f"they are kept in {self.spool.pending_path} and `mlops sync` sends them")
