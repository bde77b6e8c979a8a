"""Batches the team server has not acknowledged: `.mlops/spool/uid-N/`.

`pending.jsonl` holds one JSON line per batch (`{"stream", "records", "run_id"}`),
appended with fsync, so what was spooled survives a crash of the process or
the machine. A line is only read back when it ends with a newline and parses:
a line half-written by a process killed mid-write is never taken for a record
(the next append starts on a fresh line; the next drain sets the fragment
aside). Batches are sent in file order and the file is rewritten with what is
left; a batch sent twice (a crash between send and rewrite) adds nothing, as
the server skips sequence numbers at or below its mark. `rejected.jsonl` keeps
batches the server refused, with its reason, for a person to read. `blobs/`
holds files staged while the server was unreachable, uploaded before the
records naming them. `lock` serializes processes (a notebook's sender thread,
`mlops sync`) with `flock`.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, StoreUnavailable
from ..project import Project, make_dirs, modes_for

PENDING = "pending.jsonl"
REJECTED = "rejected.jsonl"


@dataclass
class Batch:
    """Records of one stream (a run's uuid), in sequence order."""

    stream: str
    records: list[dict[str, Any]]
    run_id: int | None = None

    @property
    def last_seq(self) -> int:
        return max((r.get("seq", 0) for r in self.records), default=0)

    def line(self) -> bytes:
        return json.dumps({"stream": self.stream, "records": self.records,
                           "run_id": self.run_id}, allow_nan=False,
                          separators=(",", ":")).encode() + b"\n"


@dataclass
class DrainReport:
    """What one pass over the spool did."""

    sent: list[Batch] = field(default_factory=list)
    rejected: list[tuple[Batch, str]] = field(default_factory=list)
    left: int = 0  # batches still pending
    stopped_by: BaseException | None = None  # the error that ended the pass early


class Spool:
    """A spool folder; every method may be called from any process."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def for_project(cls, project: Project) -> Spool:
        """This account's spool in `project`: `.mlops/spool/uid-N/`. In a group-shared
        project each member's batches wait apart, so nobody sends another's records
        with their own token (the server would refuse them as someone else's run)."""
        return cls(project.spool_dir / f"uid-{os.geteuid()}")

    @property
    def pending_path(self) -> Path:
        return self.folder / PENDING

    @property
    def rejected_path(self) -> Path:
        return self.folder / REJECTED

    @property
    def blobs(self) -> Path:
        return self.folder / "blobs"

    @contextmanager
    def locked(self) -> Iterator[None]:
        make_dirs(self.folder)
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     modes_for(self.folder)[1])
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(self, batches: list[Batch]) -> None:
        """Add `batches` at the end, on disk (fsync'd) when this returns."""
        if not batches:
            return
        with self.locked():
            self._append(self.pending_path, b"".join(b.line() for b in batches))

    def _append(self, path: Path, data: bytes) -> None:
        """Append `data` to `path`, fsync'd; raises `StoreUnavailable` naming the file."""
        try:
            self._append_raw(path, data)
        except OSError as exc:
            raise StoreUnavailable(f"cannot write the spool {path}: {exc.strerror or exc}; "
                                   "the records stay in memory and are tried again (free "
                                   "space or fix the file, then run `mlops sync`)") from None

    def _append_raw(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                     modes_for(self.folder)[1])
        try:
            end = os.lseek(fd, 0, os.SEEK_END)
            if end and os.pread(fd, 1, end - 1) != b"\n":
                data = b"\n" + data  # a killed writer's fragment stays a line of its own
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> tuple[list[Batch], list[str]]:
        """The pending batches, and the lines that are not batches (fragments)."""
        batches: list[Batch] = []
        bad: list[str] = []
        try:
            fd = os.open(self.pending_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                         | os.O_CLOEXEC)
        except FileNotFoundError:
            return batches, bad
        except OSError as exc:
            raise InvalidInput(f"cannot read the spool {self.pending_path}: {exc.strerror} "
                               "(a link is refused); move it away and run `mlops sync` "
                               "again") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InvalidInput(f"the spool {self.pending_path} is not a regular file; move "
                               "it away and run `mlops sync` again")
        with os.fdopen(fd, "rb") as file:
            for raw in file:
                if not raw.endswith(b"\n"):
                    bad.append(raw.decode("utf-8", "replace"))
                    continue
                batch = _parse(raw)
                if batch is None:
                    if raw.strip():
                        bad.append(raw.decode("utf-8", "replace").rstrip("\n"))
                else:
                    batches.append(batch)
        return batches, bad

    def pending_by_stream(self) -> dict[str, tuple[int | None, int]]:
        """stream -> (run id if known, records pending)."""
        counts: dict[str, tuple[int | None, int]] = {}
        for batch in self.read()[0]:
            run_id, count = counts.get(batch.stream, (None, 0))
            counts[batch.stream] = (run_id or batch.run_id, count + len(batch.records))
        return counts

    def rejected_count(self) -> int:
        try:
            with open(self.rejected_path, "rb") as file:
                return sum(1 for line in file if line.strip())
        except FileNotFoundError:
            return 0

    def drain(self, send: Callable[[Batch], None], retry: Callable[[BaseException], bool],
              rejected_streams: set[str] | None = None) -> DrainReport:
        """Send the pending batches in order through `send`, then keep what is left.

        `send` raises on failure; `retry(exc)` says whether the batch stays (the
        server is down, the token is refused, a sequence gap) or is set aside in
        `rejected.jsonl` with the server's message. A batch that stays stops
        the rest of its stream (order within a stream is kept); an unreachable
        server (any error `retry` accepts other than a gap) stops the pass.
        """
        from .client import SequenceGap

        report = DrainReport()
        rejected_streams = set() if rejected_streams is None else rejected_streams
        with self.locked():
            batches, bad = self.read()
            if not batches and not bad:
                return report
            keep: list[Batch] = []
            blocked: set[str] = set()
            stop: BaseException | None = None
            for batch in batches:
                if stop is not None or batch.stream in blocked:
                    keep.append(batch)
                    continue
                try:
                    send(batch)
                except Exception as exc:  # noqa: BLE001 - sorted by `retry`
                    gap = isinstance(exc, SequenceGap)
                    if gap and batch.stream in rejected_streams:
                        reason = f"follows a refused batch of this run ({exc})"
                        report.rejected.append((batch, reason))
                    elif retry(exc):
                        keep.append(batch)
                        blocked.add(batch.stream)
                        if not gap:
                            stop = exc
                    else:
                        report.rejected.append((batch, str(exc)))
                        rejected_streams.add(batch.stream)
                    continue
                report.sent.append(batch)
            report.stopped_by = stop
            report.left = len(keep)
            self._set_aside(report.rejected, bad)
            self._rewrite(keep)
        return report

    def set_aside(self, rejected: list[tuple[Batch, str]]) -> None:
        """Keep batches the server refused in `rejected.jsonl`, with its reason."""
        with self.locked():
            self._set_aside(rejected, [])

    def _set_aside(self, rejected: list[tuple[Batch, str]], fragments: list[str]) -> None:
        now = time.time()
        lines = [json.dumps({"stream": b.stream, "records": b.records, "run_id": b.run_id,
                             "reason": reason, "at": now}).encode() + b"\n"
                 for b, reason in rejected]
        lines += [json.dumps({"fragment": text[:10000], "reason": "an unfinished line (a "
                              "process killed while spooling)", "at": now}).encode() + b"\n"
                  for text in fragments]
        if lines:
            self._append(self.rejected_path, b"".join(lines))

    def _rewrite(self, batches: list[Batch]) -> None:
        tmp = self.folder / f".{PENDING}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     modes_for(self.folder)[1])
        try:
            with os.fdopen(fd, "wb") as out:
                for batch in batches:
                    out.write(batch.line())
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.pending_path)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise


def _parse(raw: bytes) -> Batch | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    stream, records, run_id = body.get("stream"), body.get("records"), body.get("run_id")
    if (not isinstance(stream, str) or not isinstance(records, list)
            or not all(isinstance(r, dict) for r in records)
            or not (run_id is None or isinstance(run_id, int))):
        return None
    return Batch(stream, records, run_id)
