"""Request logging off the request path: rows are appended to a list (a few
microseconds) and written as one Parquet batch per flush, from a worker thread.
A clean stop flushes what is left.

One bad row never holds the others back. When a batch cannot be made into a
table (a string that is not text, types that cannot share a column), the rows
that can are written and each row that cannot is set aside, whole, in
`.mlops/predictions/NAME/unwritable-rows.jsonl` with the reason, and counted.
When the write itself fails (disk full, folder gone, store locked), every row
is kept for the next flush and `PredictionLogUnavailable` says why.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import StoreUnavailable
from ..monitoring.predlog import PredictionLog
from ..project import Project, make_dirs, modes_for
from ..store import Store

log = logging.getLogger("jupyter_mlops.serving")

UNWRITABLE_FILE = "unwritable-rows.jsonl"


class PredictionLogUnavailable(StoreUnavailable):
    """A batch of the prediction log could not be written; its rows are kept for the next try."""

    def __init__(self, name: str, kept: int, reason: BaseException) -> None:
        self.name = name
        self.kept = kept
        self.reason = reason
        super().__init__(f"could not write the prediction log of {name!r} ({kept} rows kept "
                         f"for the next try): {type(reason).__name__}: {storable(str(reason))}")


def storable(text: str) -> str:
    """`text` with any lone surrogate escaped (`\\udc80`), so it encodes to UTF-8."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class BufferedLogger:
    def __init__(self, project: Project, name: str) -> None:
        self.project = project
        self.name = name
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._kinds_told: set[str] = set()
        self.written = 0
        self.set_aside = 0  # rows that could not be logged, kept in `unwritable_path`
        self.lost = 0  # rows that could not even be set aside

    @property
    def unwritable_path(self) -> Path:
        return PredictionLog(self.project).folder(self.name) / UNWRITABLE_FILE

    def add(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._rows.extend(rows)

    def pending(self) -> int:
        with self._lock:
            return len(self._rows)

    def flush(self) -> int:
        """Write buffered rows as one batch; returns how many. Safe from any thread.

        Rows that can't be made into a table are set aside (never retried);
        raises `PredictionLogUnavailable` when the write fails, keeping the rest.
        """
        with self._flushing:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return 0
            bad: list[tuple[dict[str, Any], str]] = []
            groups = _tables(rows, bad)
            if bad:
                self._set_aside(bad)
            done = 0
            try:
                with Store.for_project(self.project) as store:
                    for group, frame, table in groups:
                        PredictionLog(self.project).write(store, self.name, frame, "service",
                                                          table=table)
                        done += 1
                        self.written += len(group)
            except BaseException as exc:
                kept = [row for group, _, _ in groups[done:] for row in group]
                with self._lock:  # keep them, in order, for the next flush
                    self._rows = kept + self._rows
                if isinstance(exc, Exception):
                    raise PredictionLogUnavailable(self.name, len(kept), exc) from None
                raise
            return sum(len(group) for group, _, _ in groups)

    def _set_aside(self, bad: list[tuple[dict[str, Any], str]]) -> None:
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


def _by_kind(bad: list[tuple[dict[str, Any], str]]) -> dict[str, tuple[int, str]]:
    """Kind (the exception's name) -> (rows, the first reason on one line)."""
    kinds: dict[str, tuple[int, str]] = {}
    for _, reason in bad:
        kind = reason.partition(":")[0]
        count, first = kinds.get(kind, (0, _one_line(reason)))
        kinds[kind] = (count + 1, first)
    return kinds


def _tables(rows: list[dict[str, Any]],
            bad: list[tuple[dict[str, Any], str]]) -> list[tuple[list[dict], Any, Any]]:
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
