"""The prediction log: Parquet batch files under `.mlops/predictions/NAME/`,
indexed in the store. One row per prediction:

    request_id  at (epoch s)  version  latency_ms  status (ok | invalid | error)  error
    output (a number: P(positive) or the prediction)   in.<feature> for each input

Files are written whole (temp file + rename), so a reader never sees half a batch.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from ..artifacts import locked_temporary, remove_stale_files
from ..errors import InvalidInput, NotFound
from ..project import Project, make_dirs, modes_for
from ..store import Store
from ..validation import check_model_name

INPUT_PREFIX = "in."
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_window(text: str) -> float:
    """`30m`, `6h`, `1d`, `2w` -> seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise InvalidInput(f"window {text[:40]!r} should look like 30m, 6h, 1d or 2w")
    return float(match.group(1)) * _UNITS[match.group(2)]


def prediction_frame(inputs: Any, outputs: Any, *, version: int | None,
                     latency_ms: Any = None, request_ids: list[str] | None = None,
                     at: float | None = None) -> Any:
    """Rows of the log for a batch of successful predictions."""
    import numpy as np
    import pandas as pd

    n = len(inputs)
    frame = pd.DataFrame({
        "request_id": request_ids or [uuid.uuid4().hex for _ in range(n)],
        "at": np.full(n, time.time() if at is None else at),
        "version": np.full(n, -1 if version is None else version, dtype="int64"),
        "latency_ms": np.asarray(latency_ms if latency_ms is not None else np.zeros(n),
                                 dtype=float) * np.ones(n),
        "status": ["ok"] * n, "error": [""] * n,
        "output": np.asarray(outputs, dtype=float),
    })
    for column in inputs.columns:
        frame[INPUT_PREFIX + str(column)] = inputs[column].to_numpy()
    return frame


class PredictionLog:
    def __init__(self, project: Project) -> None:
        self.project = project
        self.root = project.home / "predictions"

    def folder(self, name: str) -> Path:
        """The model's folder of batch files; `name` passes `check_model_name`."""
        return self.root / check_model_name(name)

    def _write_file(self, name: str, prefix: str, frame: Any, table: Any = None) -> Path:
        """Write `frame` (or `table`, its Arrow form when the caller made it already) as
        a new Parquet file in `name`'s folder: temp file, then rename."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = make_dirs(self.folder(name))
        path = folder / f"{prefix}{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"
        # A locked temporary: `mlops gc` removes it only once its writer is gone.
        fd, tmp = locked_temporary(folder, f".{path.stem}-", ".tmp")
        try:
            os.fchmod(fd, modes_for(folder)[1])  # pyarrow truncates it in place: mode kept
            if table is None:
                table = pa.Table.from_pandas(frame, preserve_index=False)
            pq.write_table(table, tmp)
            os.replace(tmp, path)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        finally:
            os.close(fd)
        return path

    def remove_stale_temporaries(self, older_than: float, now: float) -> tuple[int, int, int]:
        """Remove batch files a killed writer left half-written (`*.tmp`, older than
        `older_than` seconds, held by no writer). Returns (removed, bytes, kept)."""
        totals = [0, 0, 0]
        if not self.root.is_dir():
            return 0, 0, 0
        with os.scandir(self.root) as folders:
            for folder in folders:
                if folder.is_dir(follow_symlinks=False):
                    found = remove_stale_files(Path(folder.path), older_than, now, ".tmp")
                    totals = [a + b for a, b in zip(totals, found, strict=True)]
        return totals[0], totals[1], totals[2]

    def write(self, store: Store, name: str, frame: Any, source: str,
              table: Any = None) -> Path:
        """Write one batch file and index it (`table`: `frame` already made an Arrow table)."""

        if len(frame) == 0:
            raise InvalidInput("no predictions to log")
        path = self._write_file(name, "", frame, table)
        versions = [int(v) for v in frame["version"].unique() if int(v) >= 0]
        store.predictions.add_batch(
            name, versions[0] if len(versions) == 1 else None,
            str(path.relative_to(self.project.home)), len(frame),
            int((frame["status"] != "ok").sum()), float(frame["at"].min()),
            float(frame["at"].max()), source)
        return path

    def read(self, store: Store, name: str, since: float | None = None,
             last: int | None = None) -> Any:
        """Logged rows of `name` (newer than `since`, or the `last` N), oldest first."""
        import pandas as pd
        import pyarrow.parquet as pq

        self.folder(name)  # refuses malformed names
        batches = store.predictions.batches(name, since)
        if not batches and since is None:
            raise NotFound(f"no predictions logged for {name!r}")
        if last is not None:
            kept, total = [], 0
            for batch in reversed(batches):
                kept.append(batch)
                total += batch.rows
                if total >= last:
                    break
            batches = list(reversed(kept))
        tables = [pq.read_table(self.project.home / b.path) for b in batches]
        if not tables:
            return pd.DataFrame()
        import pyarrow as pa

        # "permissive": a feature sent as whole numbers in one batch (int64) and with
        # decimals in another (double) reads as double instead of failing the merge.
        frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
        if since is not None:
            frame = frame[frame["at"] >= since]
        if last is not None:
            frame = frame.iloc[-last:]
        return frame.reset_index(drop=True)

    def write_labels(self, store: Store, name: str, frame: Any) -> int:
        """Store late-arriving labels: a frame with `request_id` and `label`."""

        missing = {"request_id", "label"} - set(frame.columns)
        if missing:
            raise InvalidInput(f"labels need the columns request_id and label; missing "
                               f"{', '.join(sorted(missing))}")
        frame = frame[["request_id", "label"]].dropna(subset=["request_id"])
        frame = frame.astype({"request_id": str})
        if frame.empty:
            raise InvalidInput("no labels in the file")
        path = self._write_file(name, "labels-", frame)
        store.predictions.add_labels(name, str(path.relative_to(self.project.home)), len(frame))
        return len(frame)

    def labels(self, store: Store, name: str) -> Any:
        import pandas as pd

        files = store.predictions.label_files(name)
        if not files:
            return pd.DataFrame(columns=["request_id", "label"])
        frame = pd.concat([pd.read_parquet(self.project.home / f) for f in files])
        return frame.drop_duplicates("request_id", keep="last")
