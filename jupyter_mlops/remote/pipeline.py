"""A pipeline runner recording into the team server: `StepRunsRecorder`.

The runner records several step runs at once (`--jobs`), each by its run id, through
the calls of `recorders.StoreRecorder`. Here each step run gets its own
`RemoteRecorder` (its own stream: the run's uuid, numbered records, so a batch sent
twice adds nothing), all sharing one client and one queue, so the records of every
step go out in the same batches and wait in the same spool when the server does
not answer. The runner's own tags (`mlops.pipeline`, `mlops.step`, ...), which no
record may carry, go through POST /api/v1/pipelines (`RemotePipelines.set_run_tags`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MlopsError
from ..hashing import StatCache, digest_file
from ..store.records import ArtifactLink, DatasetVersion, Environment, ModelVersion
from ..store.runs import NewRun
from ..team_protocol import RUNNER_TAGS
from .client import Client, retryable
from .queue import RecordQueue
from .recorder import RemoteRecorder
from .spool import Spool
from .store import RemotePipelines


class StepRunsRecorder:
    """`StoreRecorder`'s calls for many runs at once, recorded into a team server."""

    in_step = False

    def __init__(self, client: Client, spool: Spool, pipelines: RemotePipelines, *,
                 stat_cache: StatCache | None = None, ack_timeout: float = 30.0) -> None:
        self.client = client
        self.pipelines = pipelines
        self.stat_cache = stat_cache
        self.ack_timeout = ack_timeout
        self.queue = RecordQueue(client, spool)
        self._runs: dict[int, RemoteRecorder] = {}

    def _recorder(self) -> RemoteRecorder:
        return RemoteRecorder(self.client, self.queue.spool, stat_cache=self.stat_cache,
                              ack_timeout=self.ack_timeout, queue=self.queue)

    def _run(self, run_id: int) -> RemoteRecorder:
        try:
            return self._runs[run_id]
        except KeyError:
            raise MlopsError(f"run {run_id} was not started by this pipeline run") from None

    def start(self, new: NewRun, environment: Environment | None = None) -> int:
        """Create the step's run on the server (waits for its id)."""
        recorder = self._recorder()
        run_id = recorder.start(new, environment)
        self._runs[run_id] = recorder
        return run_id

    def heartbeat(self, run_id: int) -> None:
        self._run(run_id).heartbeat(run_id)

    def set_tags(self, run_id: int, tags: dict[str, str]) -> None:
        """The runner's tags through the pipelines route, the others as records."""
        own = {k: v for k, v in tags.items() if k in RUNNER_TAGS}
        others = {k: v for k, v in tags.items() if k not in RUNNER_TAGS}
        if own:
            self.pipelines.set_run_tags(run_id, own)
        if others:
            self._run(run_id).set_tags(run_id, others)

    def log_params(self, run_id: int, params: dict[str, str]) -> None:
        self._run(run_id).log_params(run_id, params)

    def log_metrics(self, run_id: int, points: list[tuple[str, float, int | None, float]]
                    ) -> None:
        self._run(run_id).log_metrics(run_id, points)

    def log_dataset(self, run_id: int, version: DatasetVersion, role: str,
                    source: str) -> None:
        self._run(run_id).log_dataset(run_id, version, role, source)

    def put_file(self, run_id: int, name: str, path: Path, kind: str) -> ArtifactLink:
        return self._run(run_id).put_file(run_id, name, path, kind)

    def put_bytes(self, run_id: int, name: str, data: bytes, kind: str) -> ArtifactLink:
        return self._run(run_id).put_bytes(run_id, name, data, kind)

    def register_model(self, run_id: int, name: str, data: bytes, flavor: str,
                       signature: dict[str, Any] | None,
                       profile: dict[str, Any] | None = None) -> ModelVersion:
        return self._run(run_id).register_model(run_id, name, data, flavor, signature,
                                                profile)

    def log_predictions(self, run_id: int, name: str, frame: Any) -> None:
        self._run(run_id).log_predictions(run_id, name, frame)

    def keep_file(self, path: Path) -> tuple[str, int]:
        """Upload a step's declared output (it belongs to no record). When the server does
        not answer, only its digest is kept: a later run that would reuse the step and
        finds the file changed can't restore it, and executes the step again."""
        try:
            return self._recorder().upload_file(path)
        except MlopsError as exc:
            if not retryable(exc):
                raise
            self.queue.outage(exc)
            return digest_file(path, self.stat_cache), path.stat().st_size

    def end(self, run_id: int, status: str, error: str | None, notebook: str | None,
            code_digest: str | None) -> None:
        """End the step's run; waits (ack timeout) for the server to take its records."""
        self._run(run_id).end(run_id, status, error, notebook, code_digest)

    def close(self) -> None:
        """Send what is queued (what can't go waits in the spool) and stop the thread."""
        self.queue.stop()
