"""Request logging off the request path: rows are appended to a list (a few
microseconds) and written as one Parquet batch per flush, from a worker thread.
A clean stop flushes what is left."""

from __future__ import annotations

import threading
from typing import Any

from ..monitoring.predlog import PredictionLog
from ..project import Project
from ..store import Store


class BufferedLogger:
    def __init__(self, project: Project, name: str) -> None:
        self.project = project
        self.name = name
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self.written = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._rows.extend(rows)

    def pending(self) -> int:
        with self._lock:
            return len(self._rows)

    def flush(self) -> int:
        """Write buffered rows as one batch; returns how many. Safe from any thread."""
        with self._flushing:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return 0
            import pandas as pd

            frame = pd.DataFrame(rows)
            try:
                with Store.for_project(self.project) as store:
                    PredictionLog(self.project).write(store, self.name, frame, "service")
            except BaseException:
                with self._lock:  # keep them for the next flush
                    self._rows = rows + self._rows
                raise
            self.written += len(rows)
            return len(rows)
