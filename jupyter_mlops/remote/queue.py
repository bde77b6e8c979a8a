"""The in-process record queue: `log_metric` appends, a daemon thread sends.

A notebook must not wait for the network, so a record is appended to a deque
(tens of microseconds with the record's building) and a thread sends what has
gathered every `interval` seconds, or at once when `batch_size` records wait,
one POST per stream and batch. When the server does not answer (or answers
5xx, 401, 429, or a sequence gap) the batch goes to the spool (`spool.py`) and
every later one follows it there, so a stream's records reach the server in
order; the thread retries the spool with back-off (0.5 s doubling to 30 s) and
the user is told once per outage, and once when it ends. A batch refused for
what it holds (another 4xx) is set aside in the spool's rejected file, and
the user is told the server's message.
"""

from __future__ import annotations

import atexit
import collections
import sys
import threading
import time
import warnings
from typing import Any

from ..errors import MlopsError
from ..team_protocol import MAX_RECORDS_PER_BATCH
from .client import Client, SequenceGap, retryable
from .spool import Batch, DrainReport, Spool

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0


class TeamServerWarning(UserWarning):
    """Records could not reach the team server (spooled), or the server refused some."""


def tell(message: str) -> None:
    """Show `message` as a warning every time it is called (the callers say it once)."""
    warnings.warn_explicit(message, TeamServerWarning, "jupyter_mlops/remote", 0,
                           registry=None)


class RecordQueue:
    """Records of many streams on their way to one server (one queue per recorder)."""

    def __init__(self, client: Client, spool: Spool, *, interval: float = 0.2,
                 batch_size: int = 1000) -> None:
        self.client = client
        self.spool = spool
        self.interval = interval
        self.batch_size = min(batch_size, MAX_RECORDS_PER_BATCH)
        self._items: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        # The last record put may still grow (`extend_tail`) until the sender takes it;
        # this lock makes "still the tail, not taken" and the growing one step.
        self._tail_lock = threading.Lock()
        self._open: dict[str, Any] | None = None
        self._wake = threading.Event()
        self._send_lock = threading.Lock()  # one pump at a time: the thread or a flush
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.acked: dict[str, int] = {}  # stream -> the server's applied_seq
        self.run_ids: dict[str, int] = {}
        self.models: dict[tuple[str, int], int] = {}  # (stream, seq) -> version number
        self.rejected: dict[tuple[str, int], str] = {}  # (stream, last seq) -> reason
        self._rejected_streams: set[str] = set()
        self._outage: BaseException | None = None  # set while batches go to the spool
        self._spooling = _has_pending(spool)  # earlier batches wait there: behind them
        self._next_try = 0.0
        self._backoff = FIRST_BACKOFF
        atexit.register(self._at_exit)

    # -- the caller's side --------------------------------------------------------------

    def put(self, stream: str, record: dict[str, Any], *, open_points: bool = False) -> None:
        """Queue `record` (it carries its `seq`); returns at once. `open_points`: a
        `metrics` record that later points may join (`extend_tail`) while it waits."""
        with self._tail_lock:
            self._items.append((stream, record))
            self._open = record if open_points else None
        if self._thread is None:
            self._start()
        if len(self._items) >= self.batch_size:
            self._wake.set()

    def extend_tail(self, record: dict[str, Any], points: list[list[Any]], limit: int
                    ) -> bool:
        """Add `points` to `record` if it is the last record queued and no sender has
        taken it yet (so no byte of it has left), keeping it within `limit` points;
        True when they were added. Consecutive `log_metric` calls so travel as one
        record: one sequence number, one check and one JSON object on the server."""
        with self._tail_lock:
            if self._open is not record or len(record["points"]) + len(points) > limit:
                return False
            record["points"].extend(points)
            return True

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mlops-record-queue",
                                        daemon=True)
        self._thread.start()

    def flush(self, timeout: float = 0.0) -> bool:
        """Send what is queued now (spooling what can't go); with `timeout` > 0 keep
        retrying the spool until it is empty or the time is up. True when nothing
        of this process waits in memory or in the spool."""
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            with self._send_lock:
                self._pump(force=True)
                done = not self._items and not self._spooling
            if done or time.monotonic() + delay > deadline:
                return done
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def wait_acked(self, stream: str, seq: int, timeout: float) -> bool:
        """Flush, retrying until the server has applied `stream` up to `seq` or `timeout`
        seconds passed; True if it has."""
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            with self._send_lock:
                self._pump(force=True)
            if self.acked.get(stream, 0) >= seq:
                return True
            if stream in self._rejected_streams:  # refused: what follows can't be applied
                return False
            if time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def refused(self, stream: str) -> bool:
        """Whether the server refused a batch of `stream` (later ones are set aside too)."""
        return stream in self._rejected_streams

    def pending(self, stream: str) -> int:
        """Records of `stream` not yet acknowledged (queued or spooled by this process)."""
        in_memory = sum(1 for s, _ in list(self._items) if s == stream)
        spooled = self.spool.pending_by_stream().get(stream, (None, 0))[1]
        return in_memory + spooled

    def stop(self) -> None:
        """Stop the thread after spooling what it could not send."""
        self._stopped = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._at_exit()
        atexit.unregister(self._at_exit)

    def _at_exit(self) -> None:
        """At interpreter exit: one try to send, then everything left goes to the spool;
        never raises (what can't be spooled either is said on stderr, with the count)."""
        with self._send_lock:
            try:
                self._pump(force=True)
            except Exception:  # noqa: BLE001 - the process is exiting: spool, never raise
                pass
            batches = self._take()
            if not batches:
                return
            try:
                self.spool.append(batches)
            except Exception as exc:  # noqa: BLE001
                count = sum(len(b.records) for b in batches)
                print(f"jupyter-mlops: {count} records for {self.client.url} are lost: {exc}",
                      file=sys.stderr)

    # -- the thread's side --------------------------------------------------------------

    def _loop(self) -> None:
        told: str | None = None
        while not self._stopped:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._send_lock:
                try:
                    self._pump(force=False)
                    failed = None
                except Exception as exc:  # noqa: BLE001 - the thread must live on
                    failed = f"jupyter-mlops: sending records to {self.client.url} failed: {exc}"
                    if failed != told:  # once, not every interval
                        tell(failed)
                told = failed

    def _take(self) -> list[Batch]:
        """Everything queued, as batches: per stream, in order, `batch_size` at most."""
        with self._tail_lock:  # a record taken is sealed: it never grows again
            taken = list(self._items)
            self._items.clear()
            self._open = None
        batches: list[Batch] = []
        current: dict[str, Batch] = {}
        for stream, record in taken:
            batch = current.get(stream)
            if batch is None or len(batch.records) >= self.batch_size:
                batch = current[stream] = Batch(stream, [], self.run_ids.get(stream))
                batches.append(batch)
            batch.records.append(record)
        return batches

    def _pump(self, force: bool) -> None:
        """Send (or spool) what is queued; try the spool when it is time. Holds _send_lock.

        Batches not yet sent or spooled when something unexpected fails (the
        spool's disk full, say) go back to the front of the queue: kept in memory
        and tried again, never dropped.
        """
        batches = self._take()
        done = 0  # batches sent, set aside or spooled
        try:
            if not self._spooling:
                for batch in batches:
                    try:
                        self._send(batch)
                    except Exception as exc:  # noqa: BLE001 - sorted below
                        follows_refused = (isinstance(exc, SequenceGap)
                                           and batch.stream in self._rejected_streams)
                        if retryable(exc) and not follows_refused:
                            self.spool.append(batches[done:])
                            done = len(batches)
                            self._spooling = True
                            self.outage(exc)
                            return
                        self._reject(batch, f"follows a refused batch of this run ({exc})"
                                     if follows_refused else str(exc))
                    done += 1
                return
            self.spool.append(batches)
            done = len(batches)
        finally:
            for batch in reversed(batches[done:]):
                self._items.extendleft((batch.stream, r) for r in reversed(batch.records))
        if not force and time.monotonic() < self._next_try:
            return
        report = self.spool.drain(self._send, retryable, self._rejected_streams)
        for batch, reason in report.rejected:
            self.rejected[(batch.stream, batch.last_seq)] = reason
            tell(f"jupyter-mlops: the team server refused {len(batch.records)} records of "
                 f"run {batch.run_id or batch.stream}: {reason}; they are kept in "
                 f"{self.spool.rejected_path}")
        self._after_drain(report)

    def _after_drain(self, report: DrainReport) -> None:
        if report.stopped_by is None and report.left == 0:
            self._spooling = False
            self._backoff = FIRST_BACKOFF
            if self._outage is not None:
                sent = sum(len(b.records) for b in report.sent)
                tell(f"jupyter-mlops: team server {self.client.url} answers again"
                     + (f"; {sent} spooled records sent" if sent else ""))
                self._outage = None
            return
        if report.stopped_by is not None:
            self.outage(report.stopped_by)
        self._next_try = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)

    def outage(self, exc: BaseException) -> None:
        """Note that the server did not take something; the user is told once per outage."""
        if self._outage is None:
            self._outage = exc
            tell(f"jupyter-mlops: records are kept in {self.spool.pending_path} until the team "
                 f"server takes them ({exc}); they are sent when it answers again, or by "
                 "`mlops sync`")
        self._next_try = time.monotonic() + self._backoff

    def _reject(self, batch: Batch, reason: str) -> None:
        self._rejected_streams.add(batch.stream)
        self.rejected[(batch.stream, batch.last_seq)] = reason
        self.spool.set_aside([(batch, reason)])
        tell(f"jupyter-mlops: the team server refused {len(batch.records)} records of run "
             f"{batch.run_id or batch.stream}: {reason}; they are kept in "
             f"{self.spool.rejected_path}")

    def _send(self, batch: Batch) -> None:
        """POST one batch (its staged blobs first) and note what the server answered."""
        upload_staged(self.client, self.spool, batch.records)
        answer = self.client.send_records(batch.stream, batch.records)
        self.note(batch.stream, answer)

    def note(self, stream: str, answer: dict[str, Any]) -> None:
        """Remember the server's mark, run id and model versions for `stream`."""
        self.acked[stream] = max(self.acked.get(stream, 0), answer["applied_seq"])
        if isinstance(answer.get("run_id"), int):
            self.run_ids[stream] = answer["run_id"]
        for model in answer.get("models") or ():
            if isinstance(model, dict) and isinstance(model.get("seq"), int) \
                    and isinstance(model.get("version"), int):
                self.models[(stream, model["seq"])] = model["version"]


def upload_staged(client: Client, spool: Spool, records: list[dict[str, Any]]) -> None:
    """Upload the blobs staged in the spool that `records` name, then drop the copies."""
    staged = {}
    for record in records:
        digest = record.get("digest")
        if isinstance(digest, str):
            path = spool.blobs / digest.replace(":", "-")
            if path.is_file():
                staged[digest] = path
    if not staged:
        return
    for digest in client.missing(list(staged)):
        if digest not in staged:
            raise MlopsError(f"team server {client.url} named a blob not asked for: "
                             f"{str(digest)[:80]}")
        with open(staged[digest], "rb") as source:
            client.put_blob(digest, source, staged[digest].stat().st_size)
    for path in staged.values():
        path.unlink(missing_ok=True)


def _has_pending(spool: Spool) -> bool:
    try:
        return spool.pending_path.stat().st_size > 0
    except FileNotFoundError:
        return False
