"""`mlops serve` in a team-mode project: the prediction log shipped to the team server.

The service records a run on the server (`source_kind` "serving", named after the
reference it serves) and each batch of its log becomes one `predictions` record of
that run's stream: the rows as a Parquet blob, uploaded first, then the record,
numbered, so a batch sent twice adds nothing. A batch counts as written once the
server took it or it is in the local spool (`.mlops/spool/uid-N/`, fsync'd): while
the server is down batches wait there, in order, and are sent when it answers
again, by this service (it tries every round) or by `mlops sync`. The token needs
the `predictions` permission (role runner): the service checks it before it starts.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from .. import capture
from ..errors import PermissionDenied
from ..project import Project
from ..remote.client import Client
from ..remote.queue import RecordQueue
from ..remote.recorder import RemoteRecorder
from ..remote.spool import Spool
from ..store.runs import NewRun


class TeamPredictionLog:
    """Where `BufferedLogger` writes in team mode (`write`), and the run it writes into."""

    def __init__(self, project: Project, client: Client, ref: str) -> None:
        self.client = client
        self.ref = ref
        self.queue = RecordQueue(client, Spool.for_project(project))
        self.recorder = RemoteRecorder(client, self.queue.spool, queue=self.queue,
                                       ack_timeout=project.store.ack_timeout_seconds)
        self.run_id: int | None = None
        self.heartbeat_seconds = project.tracking.heartbeat_seconds  # as a notebook's run
        self._beat = 0.0
        self.behind = False  # the last round left records unsent (the server did not take them)

    def start(self) -> int:
        """Check that the token may ship predictions, then start the serving run.

        Raises `PermissionDenied` (one line naming the role to ask for),
        `ServerUnreachable`, `AuthenticationFailed`.
        """
        who = self.client.whoami()
        if "predictions" not in (who.get("permissions") or ()):
            raise PermissionDenied(
                f"mlops serve ships its prediction log to {self.client.url}, and user "
                f"{who.get('user')!r} (roles: {', '.join(who.get('roles') or ())}) may not log "
                "predictions: use a token with the 'predictions' permission (role runner), "
                "or --no-log")
        self.run_id = self.recorder.start(NewRun(
            uuid=uuid.uuid4().hex, name=f"serve {self.ref}", started_at=time.time(),
            source_kind="serving", host=capture.host(), user=capture.user(),
            pid=os.getpid()))
        self._beat = time.monotonic()
        return self.run_id

    def write(self, name: str, frame: Any) -> None:
        """Queue one batch of log rows: its blob uploaded (or staged in the spool when
        the server does not answer), its record queued; `tick`, right after, sends it.
        Raises when the blob could be neither uploaded nor staged (the caller keeps the
        rows); once this returns, the rows are the queue's."""
        self.recorder.log_predictions(self.run_id, name, frame)

    def tick(self) -> None:
        """Each round of the log's writer: a heartbeat when due, then send what is queued
        and what waits in the spool (spooling what the server does not take)."""
        if time.monotonic() - self._beat >= self.heartbeat_seconds:
            self._beat = time.monotonic()
            self.recorder.heartbeat(self.run_id)
        self.behind = not self.queue.flush()

    def unacknowledged(self) -> int:
        """Records of the serving run the server has not acknowledged yet (cheap: no file
        is read, for /health)."""
        stream = self.recorder.stream
        return 0 if stream is None else self.recorder.seq - self.queue.acked.get(stream, 0)

    def close(self, status: str = "finished") -> int:
        """End the serving run and wait (the ack timeout) for the server to take every
        record; returns how many it has not (they wait in the spool)."""
        if self.run_id is not None:
            self.recorder.end(self.run_id, status, None, None, None)
        self.queue.stop()
        return self.recorder.unacknowledged
