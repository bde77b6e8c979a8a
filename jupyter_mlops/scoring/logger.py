"""Request logging off the request path: rows are appended to a list (a few
microseconds) and written as one Parquet batch per flush, from a worker thread.
Any stop flushes what is left.

One bad row never holds the others back. When a batch cannot be made into a
table (a string that is not text, types that cannot share a column), the rows
that can are written and each row that cannot is set aside, whole, in
`.mlops/predictions/NAME/unwritable-rows.jsonl` with the reason, and counted.
When the write itself fails (disk full, folder gone, store locked for more
than `LOG_WRITE_WAIT_SECONDS`), every row is kept for the next flush and
`PredictionLogUnavailable` says why.

Memory is bounded: past `max_rows` (`MAX_BUFFERED_ROWS` unless the service is
told otherwise) rows the log can't take are spilled to a local file (see
`spill`) and written to the log, exactly once, when it can take them again,
by this service or the next one started.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreUnavailable
from ..monitoring.predlog import PredictionLog
from ..project import Project, make_dirs, modes_for
from ..store import Store
from . import MAX_BUFFERED_ROWS
from .spill import NotASpillFile, SpillFolder

log = logging.getLogger("jupyter_mlops.scoring")

UNWRITABLE_FILE = "unwritable-rows.jsonl"
LOG_WRITE_WAIT_SECONDS = 5.0  # how long a flush waits for another process's store lock
READ_ROUNDS = 5  # listings of the log read while checking spilled rows against it


class PredictionLogUnavailable(StoreUnavailable):
    """A batch of the prediction log could not be written; its rows are kept for the next try."""

    def __init__(self, name: str, kept: int, reason: BaseException) -> None:
        self.name = name
        self.kept = kept
        self.reason = reason
        super().__init__(f"could not write the prediction log of {name!r} ({kept} rows kept "
                         f"for the next try): {type(reason).__name__}: {storable(str(reason))}")


class SpillFailed(StoreUnavailable):
    """Rows could not be spilled to a file either: they stay in memory."""

    def __init__(self, folder: str, kept: int, reason: BaseException) -> None:
        self.folder = folder
        self.kept = kept
        self.reason = reason
        super().__init__(f"could not spill {kept} prediction-log rows to {folder} (they stay "
                         f"in memory): {type(reason).__name__}: {storable(str(reason))}")


class SpillUnreadable(StoreUnavailable):
    """Spilled rows could not be read back; they stay in their file for the next try."""

    def __init__(self, folder: str, reason: BaseException) -> None:
        self.folder = folder
        self.reason = reason
        super().__init__(f"could not read the spilled prediction-log rows in {folder} (they "
                         f"stay there): {type(reason).__name__}: {storable(str(reason))}")


def storable(text: str) -> str:
    """`text` with any lone surrogate escaped (`\\udc80`), so it encodes to UTF-8."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class Block:
    """The log rows of one request answered on the fast path, column by column.

    Kept as the request made them (a list of ids, one matrix of inputs, one
    array of outputs), a block costs the request path no per-row work, and a
    flush turns every block in the buffer into one Arrow table by
    concatenating arrays: no Python object per row or value is made while
    requests wait for the interpreter. The rare paths (spill, a failed
    write, rows mixed with failures) take the block's rows as dicts.
    """

    ids: list[str]
    at: float
    version: int
    latency_ms: float
    outputs: Any  # float64 array, one per row
    names: tuple[str, ...]  # the input columns, with INPUT_PREFIX
    inputs: Any  # float64 matrix, rows x names

    def rows(self) -> list[dict[str, Any]]:
        """The same rows as `add` takes them."""
        return [{"request_id": rid, "at": self.at, "version": self.version,
                 "latency_ms": self.latency_ms, "status": "ok", "error": "", "output": out,
                 **dict(zip(self.names, values, strict=True))}
                for rid, out, values in zip(self.ids, self.outputs.tolist(),
                                            self.inputs.tolist(), strict=True)]


class BufferedLogger:
    """The service's prediction log: `add` from the request path, `flush` from a worker.

    `on_full` (if set) is called, from `add`'s thread, when the buffer reaches
    `max_rows`: the service then flushes at once, or spills when the log
    can't be written.
    """

    def __init__(self, project: Project, name: str, *, max_rows: int = MAX_BUFFERED_ROWS,
                 ship: Callable[[str, Any], None] | None = None) -> None:
        self.project = project
        # Team mode: `ship(name, frame)` hands a batch to the team server's queue
        # (`team.TeamPredictionLog.write`) instead of the project's own log.
        self.ship = ship
        self.name = name
        self.max_rows = max_rows
        self.spill_folder = SpillFolder(project, name)
        self.on_full: Callable[[], None] | None = None
        self._rows: list[dict[str, Any]] = []
        self._blocks: list[Block] = []  # rows of the fast path, as the requests made them
        self._block_rows = 0
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._kinds_told: set[str] = set()
        self._spilled: dict[str, int] = {}  # spill file key -> rows, waiting to be written
        self._look_for_spills = True  # at the start: an earlier run may have left some
        self._ignored: set[str] = set()  # entries named like spill files that are not
        self.written = 0
        self.spilled = 0  # rows this process spilled to files
        self.recovered = 0  # rows written to the log from spill files
        self.set_aside = 0  # rows that could not be logged, kept in `unwritable_path`
        self.lost = 0  # rows that could not even be set aside
        self.recovery_problem: str | None = None  # why spilled rows can't be read back now

    @property
    def unwritable_path(self) -> Path:
        return PredictionLog(self.project).folder(self.name) / UNWRITABLE_FILE

    def add(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            before = len(self._rows) + self._block_rows
            self._rows.extend(rows)
            full = before < self.max_rows <= before + len(rows)
        if full and self.on_full is not None:
            self.on_full()

    def add_block(self, block: Block) -> None:
        """Add the rows of one request of the fast path (see `Block`)."""
        with self._lock:
            before = len(self._rows) + self._block_rows
            self._blocks.append(block)
            self._block_rows += len(block.ids)
            full = before < self.max_rows <= before + len(block.ids)
        if full and self.on_full is not None:
            self.on_full()

    def pending(self) -> int:
        """Rows in memory, not yet written (nor spilled)."""
        with self._lock:
            return len(self._rows) + self._block_rows

    def _take(self) -> tuple[list[dict[str, Any]], list[Block]]:
        """Empty the buffer; returns its rows and blocks. Called with `_lock` held."""
        rows, self._rows = self._rows, []
        blocks, self._blocks, self._block_rows = self._blocks, [], 0
        return rows, blocks

    def _take_rows(self) -> list[dict[str, Any]]:
        """Empty the buffer, blocks made rows (the rare paths). Called with `_lock` held."""
        rows, blocks = self._take()
        return rows + [row for block in blocks for row in block.rows()]

    def spilled_waiting(self) -> int:
        """Rows in spill files, known to this process, not yet written to the log."""
        with self._lock:
            return sum(self._spilled.values())

    def find_spilled(self) -> int:
        """Count the rows an earlier run left in spill files; returns how many.
        Raises `SpillUnreadable`."""
        try:
            found = {key: self.spill_folder.count_rows(key) for key in self.spill_folder.keys()}
        except OSError as exc:
            raise SpillUnreadable(self.spill_folder.shown(), exc) from None
        with self._lock:
            self._spilled.update(found)
        return sum(found.values())

    def flush(self) -> int:
        """Write buffered rows as one batch, then any spilled rows; returns how many.
        Safe from any thread.

        Rows that can't be made into a table are set aside (never retried);
        raises `PredictionLogUnavailable` when the write fails, keeping the rest
        (in memory, or in their spill file). Spilled rows that can't be read
        back stay in their file (`recovery_problem` says why).
        """
        with self._flushing:
            with self._lock:
                rows, blocks = self._take()
            if rows:  # failures among them: one table of dicts, as before
                rows += [row for block in blocks for row in block.rows()]
                blocks = []
            written = self._write(rows, requeue=True) if rows else 0
            written += self._write_blocks(blocks) if blocks else 0
            if self._look_for_spills:
                written += self._recover_reporting()
            return written

    def _recover_reporting(self) -> int:
        """`_recover`, where spilled rows that can't be read back are said (once) and
        shown by `recovery_problem`, without holding back the log's own writes."""
        try:
            written = self._recover()
        except SpillUnreadable as exc:
            if self.recovery_problem is None:
                log.warning("%s", _one_line(str(exc)))
            self.recovery_problem = str(exc)
            return 0
        if self.recovery_problem is not None:
            log.info("the spilled prediction-log rows can be read again")
            self.recovery_problem = None
        return written

    def spill(self) -> int:
        """Move the rows in memory to a new spill file; returns how many. Safe from any
        thread. Raises `SpillFailed` (the rows stay in memory)."""
        with self._lock:
            rows = self._take_rows()
        if not rows:
            return 0
        lines: list[str] = []
        bad: list[tuple[dict[str, Any], str]] = []
        for row in rows:
            try:
                lines.append(json.dumps(row, ensure_ascii=True, separators=(",", ":")) + "\n")
            except (TypeError, ValueError) as exc:  # no JSON for it: no table either
                bad.append((row, storable(f"{type(exc).__name__}: {exc}")))
        try:
            key = self.spill_folder.write("".join(lines).encode("ascii")) if lines else None
        except Exception as exc:
            with self._lock:  # kept, in order, in front of what came meanwhile
                self._rows = rows + self._rows
            raise SpillFailed(self.spill_folder.shown(), len(rows), exc) from None
        if bad:
            self._set_aside(bad)
        with self._lock:
            if key is not None:
                self._spilled[key] = len(lines)
            self.spilled += len(lines)
        self._look_for_spills = True
        return len(lines)

    def _write(self, rows: list[dict[str, Any]], *, requeue: bool) -> int:
        """Write `rows` to the log, as few batches as their types allow; returns how many.

        On failure the rows not written are put back in front of the buffer
        (`requeue`) or left to their spill file, and `PredictionLogUnavailable`
        is raised.
        """
        bad: list[tuple[Any, str]] = []
        groups = _tables(rows, bad)
        if bad and requeue:  # a spill file's are set aside once its rows are in the log
            self._set_aside(bad)
        done = 0
        try:
            with self._log_writer() as write:
                for group, frame, table in groups:
                    write(frame, table)
                    done += 1
                    with self._lock:
                        self.written += len(group)
        except BaseException as exc:
            kept = [row for group, _, _ in groups[done:] for row in group]
            if requeue:
                with self._lock:  # keep them, in order, for the next flush
                    self._rows = kept + self._rows
            if isinstance(exc, Exception):
                raise PredictionLogUnavailable(self.name, len(kept), exc) from None
            raise
        if bad and not requeue:
            self._set_aside(bad)
        return sum(len(group) for group, _, _ in groups)

    def _write_blocks(self, blocks: list[Block]) -> int:
        """Write `blocks` as one table per set of input columns; returns how many rows.
        On failure their rows are put back in front of the buffer, as dicts, and
        `PredictionLogUnavailable` is raised."""
        groups: dict[tuple[str, ...], list[Block]] = {}
        for block in blocks:
            groups.setdefault(block.names, []).append(block)
        done: list[Block] = []
        try:
            with self._log_writer() as write:
                for group in groups.values():
                    table = _block_table(group)
                    write(None, table)
                    done += group
                    with self._lock:
                        self.written += table.num_rows
        except BaseException as exc:
            written = {id(block) for block in done}
            kept = [row for block in blocks if id(block) not in written
                    for row in block.rows()]
            with self._lock:
                self._rows = kept + self._rows
            if isinstance(exc, Exception):
                raise PredictionLogUnavailable(self.name, len(kept), exc) from None
            raise
        return sum(len(block.ids) for block in blocks)

    @contextmanager
    def _log_writer(self) -> Iterator[Callable[[Any, Any], object]]:
        """`write(frame, table)` of one batch: into the project's log, or shipped."""
        if self.ship is not None:
            yield lambda frame, table: self.ship(  # type: ignore[misc]
                self.name, table.to_pandas() if frame is None else frame)
            return
        with Store.for_project(self.project, busy_seconds=LOG_WRITE_WAIT_SECONDS) as store:
            log = PredictionLog(self.project)
            yield lambda frame, table: log.write_table(store, self.name, table, "service")

    def _recover(self) -> int:
        """Write the rows of every spill file to the log, each exactly once; returns how many."""
        self._look_for_spills = False  # a file spilled from now on sets it again
        folder = self.spill_folder
        with self._lock:
            known = set(self._spilled)
        try:
            keys = folder.keys()
        except OSError as exc:
            self._look_for_spills = True
            raise SpillUnreadable(folder.shown(), exc) from None
        with self._lock:  # another service wrote these back
            for key in known.difference(keys):
                self._spilled.pop(key, None)
        written = 0
        for key in keys:
            if key in self._ignored:
                continue
            try:
                with folder.claim(key) as claim:
                    if claim is None:  # another service has it, or wrote it back already
                        self._look_for_spills = True
                        continue
                    rows, bad = _spilled_rows(claim.data)
                    try:
                        if claim.retry:  # stopped part-way before: skip what the log holds
                            rows = self._not_logged(rows)
                        done = self._write(rows, requeue=False) if rows else 0
                    except PredictionLogUnavailable:
                        self._look_for_spills = True
                        raise
                    if bad:
                        self._set_aside(bad)
                    claim.remove()
            except NotASpillFile as exc:
                self._ignored.add(key)
                log.warning("%s", _one_line(str(exc)))
                continue
            except OSError as exc:
                self._look_for_spills = True
                raise SpillUnreadable(folder.shown(), exc) from None
            written += done
            with self._lock:
                self._spilled.pop(key, None)
                self.recovered += done
        try:
            folder.sweep()
        except OSError:
            pass  # a temporary left by a killed writer: tried again next time
        return written

    def _not_logged(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`rows` less those whose request id the log already holds (read only from the
        batches whose time span meets theirs). Raises `PredictionLogUnavailable`.

        A listed file found gone was merged (compacted) meanwhile: the listing is
        read again; one still listed after it was found gone is gone for good and
        holds nothing that can be read.
        """
        import pyarrow.parquet as pq

        if self.ship is not None:
            # The team server's log can't be read back from here: the rows of a spill file
            # a stopped service was writing back are shipped again (they may double).
            return rows
        times = [row["at"] for row in rows if isinstance(row.get("at"), int | float)]
        first, last = (min(times), max(times)) if len(times) == len(rows) else (None, None)
        seen: dict[str, set[Any]] = {}  # batch file -> its request ids
        missing: set[str] = set()
        try:
            for _ in range(READ_ROUNDS):
                with Store.for_project(self.project,
                                       busy_seconds=LOG_WRITE_WAIT_SECONDS) as store:
                    batches = store.predictions.batches(self.name, first)
                vanished = False
                for batch in batches:
                    if batch.path in seen or (last is not None and batch.first_at > last):
                        continue
                    try:
                        table = pq.read_table(self.project.home / batch.path,
                                              columns=["request_id"])
                    except FileNotFoundError:
                        if batch.path in missing:  # listed again: gone for good
                            seen[batch.path] = set()
                        else:
                            missing.add(batch.path)
                            vanished = True
                        continue
                    seen[batch.path] = set(table.column("request_id").to_pylist())
                if not vanished:
                    break
            else:
                raise RuntimeError(f"the log was rewritten {READ_ROUNDS} times while it was "
                                   "read (compactions?)")
        except Exception as exc:
            raise PredictionLogUnavailable(self.name, len(rows), exc) from None
        logged = set().union(*seen.values())
        return [row for row in rows if row.get("request_id") not in logged]

    def _set_aside(self, bad: list[tuple[Any, str]]) -> None:
        """Append each unwritable row with its reason to `unwritable_path`; say so once."""
        now = time.time()
        lines = "".join(_json_line(now, row, reason) for row, reason in bad)
        path: Path | str = f"predictions/{self.name}/{UNWRITABLE_FILE}"
        try:
            path = self.unwritable_path
            folder = make_dirs(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                         | getattr(os, "O_CLOEXEC", 0), modes_for(folder)[1])
            try:
                data = memoryview(lines.encode("ascii"))
                while data:
                    data = data[os.write(fd, data):]
            finally:
                os.close(fd)
        except Exception as exc:  # never a reason to hold back the rows that can be written
            self.lost += len(bad)
            if f"lost {type(exc).__name__}" not in self._kinds_told:
                self._kinds_told.add(f"lost {type(exc).__name__}")
                log.error("%d prediction-log rows could not be written (%s) nor set aside in "
                          "%s (%s: %s); they are lost", len(bad), _one_line(bad[0][1]), path,
                          type(exc).__name__, _one_line(str(exc)))
            return
        self.set_aside += len(bad)
        for kind, (count, reason) in _by_kind(bad).items():
            if kind not in self._kinds_told and len(self._kinds_told) < 100:
                self._kinds_told.add(kind)  # each kind of problem is told once
                log.warning("%d prediction-log rows could not be written (%s); set aside in "
                            "%s, the other rows are logged", count, reason, path)


def _spilled_rows(data: bytes) -> tuple[list[dict[str, Any]], list[tuple[Any, str]]]:
    """The rows of a spill file, and each line that is not one with the reason."""
    rows: list[dict[str, Any]] = []
    bad: list[tuple[Any, str]] = []
    for line in data.decode("ascii", "backslashreplace").splitlines():
        try:
            row = json.loads(line)
        except ValueError as exc:
            bad.append((line, f"a spilled line that is not JSON: {exc}"))
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append((line, "a spilled line that is not a row"))
    return rows, bad


def _by_kind(bad: list[tuple[Any, str]]) -> dict[str, tuple[int, str]]:
    """Kind (the exception's name) -> (rows, the first reason on one line)."""
    kinds: dict[str, tuple[int, str]] = {}
    for _, reason in bad:
        kind = reason.partition(":")[0]
        count, first = kinds.get(kind, (0, _one_line(reason)))
        kinds[kind] = (count + 1, first)
    return kinds


def _tables(rows: list[dict[str, Any]],
            bad: list[tuple[Any, str]]) -> list[tuple[list[dict], Any, Any]]:
    """`rows` as (rows, DataFrame, Arrow table) groups, in order; rows that no table
    can hold are appended to `bad` with the reason.

    All rows make one group unless the conversion fails; then each half is
    tried on its own, down to single rows, so k bad rows among n cost
    about k log n conversions and the good ones are kept.
    """
    import pandas as pd
    import pyarrow as pa

    try:
        frame = pd.DataFrame(rows)
        return [(rows, frame, pa.Table.from_pandas(frame, preserve_index=False))]
    except Exception as exc:
        if len(rows) == 1:
            bad.append((rows[0], storable(f"{type(exc).__name__}: {exc}")))
            return []
    middle = len(rows) // 2
    return _tables(rows[:middle], bad) + _tables(rows[middle:], bad)


def _block_table(blocks: list[Block]) -> Any:
    """One Arrow table of the rows of `blocks` (all with the same input columns), with
    the schema the same rows get as dicts (`_tables`), so every batch file reads alike."""
    import numpy as np
    import pyarrow as pa

    counts = [len(block.ids) for block in blocks]
    total = sum(counts)
    ids: list[str] = []
    for block in blocks:
        ids += block.ids
    inputs = np.concatenate([block.inputs for block in blocks])
    columns = {
        "request_id": pa.array(ids, pa.string()),
        "at": np.repeat(np.array([block.at for block in blocks], np.float64), counts),
        "version": np.repeat(np.array([block.version for block in blocks], np.int64), counts),
        "latency_ms": np.repeat(np.array([block.latency_ms for block in blocks], np.float64),
                                counts),
        "status": pa.array(["ok"] * total, pa.string()),
        "error": pa.array([""] * total, pa.string()),
        "output": np.concatenate([block.outputs for block in blocks]),
    }
    for index, name in enumerate(blocks[0].names):
        columns[name] = inputs[:, index]
    table = pa.table(columns)
    _, _, like = _tables(blocks[0].rows()[:1], [])[0]
    return table.cast(like.schema)


def _json_line(now: float, row: dict[str, Any], reason: str) -> str:
    """One line of the set-aside file: ASCII JSON (a lone surrogate is escaped)."""
    try:
        text = json.dumps({"set_aside_at": now, "reason": reason, "row": row},
                          ensure_ascii=True, default=repr)
    except (TypeError, ValueError):  # e.g. a key that is not a string: keep its repr
        text = json.dumps({"set_aside_at": now, "reason": reason, "row": repr(row)},
                          ensure_ascii=True)
    return text + "\n"


def _one_line(text: str, limit: int = 300) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
