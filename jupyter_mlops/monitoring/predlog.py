"""The prediction log: Parquet batch files under `.mlops/predictions/NAME/`,
indexed in the store. One row per prediction:

    request_id  at (epoch s)  version  latency_ms  status (ok | invalid | error)  error
    output (a number: P(positive) or the prediction)   in.<feature> for each input

Files are written whole (temp file + rename), so a reader never sees half a batch,
and a file is in the log once its batch row is in the store. The log's order is
by time (`at`), stable: rows with the same time keep the order they were logged in.

The service writes one small file per flush (one a second); `compact` merges a
finished hour's small files into one (see `compaction.py`), in one store
transaction, so a reader lists either the small files or the merged one. A
reader that finds a listed file gone (merged since it listed) lists again and
reads only what is new.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifacts import locked_temporary, remove_stale_files
from ..errors import Conflict, IntegrityError, InvalidInput, NotFound
from ..project import Project, make_dirs, modes_for
from ..store import Store
from ..store.predictions import PredictionBatch
from ..validation import check_model_name

if TYPE_CHECKING:
    from .compaction import Compaction
    from .labels import LabelUpload

INPUT_PREFIX = "in."
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# A reader lists again when a file it listed was merged away meanwhile; each round
# reads only the new files, so this many rounds means the log is being rewritten
# under it without pause.
READ_ROUNDS = 20
_THREADED_FROM = 16  # files: below this, reading them one by one is as fast


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

    def _write_file(self, name: str, prefix: str, frame: Any, table: Any = None,
                    stamp: str | None = None) -> Path:
        """Write `frame` (or `table`, its Arrow form when the caller made it already) as
        a new Parquet file in `name`'s folder: temp file, then rename."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = make_dirs(self.folder(name))
        stamp = stamp or time.strftime("%Y%m%dT%H%M%S")
        path = folder / f"{prefix}{stamp}-{uuid.uuid4().hex[:12]}.parquet"
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

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.project.home))

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
        import pyarrow as pa

        if len(frame) == 0:
            raise InvalidInput("no predictions to log")
        if table is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        return self.write_table(store, name, table, source)

    def write_table(self, store: Store, name: str, table: Any, source: str) -> Path:
        """Write an Arrow table of log rows as one batch file and index it. When the index
        refuses it, the file is removed again: the caller keeps the rows."""
        import pyarrow.compute as pc

        if table.num_rows == 0:
            raise InvalidInput("no predictions to log")
        path = self._write_file(name, "", None, table)
        versions = [int(v) for v in pc.unique(table.column("version")).to_pylist()
                    if v is not None and int(v) >= 0]
        at = pc.min_max(table.column("at")).as_py()
        errors = table.num_rows - int(pc.sum(pc.equal(table.column("status"), "ok")).as_py()
                                      or 0)
        try:
            store.predictions.add_batch(
                name, versions[0] if len(versions) == 1 else None, self.relative(path),
                table.num_rows, errors, float(at["min"]), float(at["max"]), source)
        except BaseException:
            path.unlink(missing_ok=True)  # never in the log: a retry would double its rows
            raise
        return path

    def read(self, store: Store, name: str, since: float | None = None,
             last: int | None = None, columns: Sequence[str] | None = None) -> Any:
        """Logged rows of `name` (at or after `since`, or the `last` N), oldest first;
        `columns` (and `at`) only, when given."""
        import pandas as pd

        self.folder(name)  # refuses malformed names
        table = self.read_table(store, name, since=since, last=last, columns=columns)
        if table is None:
            return pd.DataFrame()
        frame = table.to_pandas()
        if since is not None:
            frame = frame[frame["at"] >= since]
        if last is not None:
            frame = frame.iloc[-last:]
        return frame.reset_index(drop=True)

    def read_table(self, store: Store, name: str, since: float | None = None,
                   last: int | None = None, columns: Sequence[str] | None = None) -> Any:
        """The batch files holding the window's rows, as one Arrow table in the log's
        order (None when there are none); rows outside the window may be included;
        `columns` (and `at`) only, when given.

        Raises `NotFound` when nothing was ever logged for `name` or a listed file is
        missing, `Conflict` when the log keeps being rewritten while it is read."""
        import pyarrow as pa

        if columns is not None and "at" not in columns:
            columns = [*columns, "at"]  # the log's order
        # By path, never by batch id: SQLite may give a merged file the id of a row it
        # replaced. Paths are never reused.
        tables: dict[str, Any] = {}
        batches: list[PredictionBatch] = []
        vanished: set[str] = set()
        for _ in range(READ_ROUNDS):
            listed = store.predictions.batches(name, since)
            if not listed and since is None and not tables:
                raise NotFound(f"no predictions logged for {name!r}")
            batches = covering(listed, last)
            paths = {b.path for b in batches}
            still = sorted(paths & vanished)
            if still:  # listed after it was found missing: gone, not merged
                raise NotFound(f"the prediction log of {name!r} lists {still[0]}, which "
                               f"is missing from {self.project.home}; restore it, or remove "
                               "the model's folder of predictions and its rows start again")
            tables = {p: t for p, t in tables.items() if p in paths}
            found, vanished = read_files(self.project.home,
                                         [b for b in batches if b.path not in tables], columns)
            tables.update(found)
            if not vanished:
                break
        else:
            raise Conflict(f"the prediction log of {name!r} was rewritten {READ_ROUNDS} times "
                           "while it was read (a compaction?); try again")
        if not batches:
            return None
        return in_log_order(pa.concat_tables([tables[b.path] for b in batches],
                                             promote_options="permissive"))

    def request_versions(self, store: Store, name: str) -> Any:
        """Every logged request id of `name` with its version (-1: none), as a DataFrame;
        empty when nothing is logged."""
        import pandas as pd

        self.folder(name)
        if not store.predictions.batches(name):
            return pd.DataFrame({"request_id": pd.Series(dtype=object),
                                 "version": pd.Series(dtype="int64")})
        table = self.read_table(store, name, columns=["request_id", "version"])
        return table.to_pandas()

    def write_labels(self, store: Store, name: str, frame: Any,
                     row_name: Callable[[int], str] | None = None) -> LabelUpload:
        """Check and store late-arriving labels (a frame with `request_id` and `label`):
        see `labels.write_labels`."""
        from .labels import write_labels

        return write_labels(self, store, name, frame, row_name)

    def labels(self, store: Store, name: str) -> Any:
        """The labels of `name`: request_id, label (the last upload wins) and corrected
        (a later upload changed the label): see `labels.read_labels`."""
        from .labels import read_labels

        return read_labels(self, store, name)

    def compact(self, store: Store, name: str, **options: Any) -> Compaction:
        """Merge `name`'s small batch files hour by hour: see `compaction.compact`."""
        from .compaction import compact

        return compact(self, store, name, **options)


def covering(batches: list[PredictionBatch], last: int | None) -> list[PredictionBatch]:
    """The batches that hold the `last` rows by time (all of them when `last` is None), in
    the log's order. Files may overlap in time, so every file with a row as late as the
    earliest file needed to reach `last` rows is kept too."""
    if last is None or not batches:
        return batches
    total, earliest = 0, None
    for batch in sorted(batches, key=lambda b: b.last_at, reverse=True):
        total += batch.rows
        earliest = batch.first_at if earliest is None else min(earliest, batch.first_at)
        if total >= last:
            break
    return [b for b in batches if b.last_at >= earliest]


def read_files(home: Path, batches: Sequence[PredictionBatch],
               columns: Sequence[str] | None = None) -> tuple[dict[str, Any], set[str]]:
    """Read the batches' files: ({path: Arrow table}, {paths of files that are gone}).
    Many small files are read by a few threads (Parquet's reader releases the GIL).
    Raises `IntegrityError` for a file that is not readable Parquet."""
    import pyarrow.parquet as pq

    wanted = list(columns) if columns is not None else None

    def one(batch: PredictionBatch) -> Any:
        try:
            return pq.ParquetFile(home / batch.path).read(columns=wanted, use_threads=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
            raise IntegrityError(batch.path, "a Parquet file of the prediction log",
                                 f"{type(exc).__name__}: {str(exc)[:200]}") from None

    if len(batches) < _THREADED_FROM:
        results = [one(b) for b in batches]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            results = list(pool.map(one, batches, chunksize=64))
    pairs = list(zip(batches, results, strict=True))
    return ({b.path: t for b, t in pairs if t is not None},
            {b.path for b, t in pairs if t is None})


def in_log_order(table: Any) -> Any:
    """`table` (files concatenated in the log's order) stably sorted by `at`, without the
    pandas metadata of whichever file came first."""
    import numpy as np
    import pyarrow.compute as pc

    table = table.replace_schema_metadata(None)
    at = table.column("at").to_numpy()
    if at.size > 1 and not bool(np.all(at[1:] >= at[:-1])):
        table = table.take(pc.sort_indices(table, sort_keys=[("at", "ascending")]))
    return table
