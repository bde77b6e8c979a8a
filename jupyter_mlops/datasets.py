"""Describe a dataset: its digest plus what we can cheaply learn of its shape.

Row counts and column schemas come from Parquet metadata (no data read), a
CSV header and a sample, or an in-memory table's own schema (pandas, numpy,
pyarrow, polars; see `table_digests`).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from .errors import InvalidInput, NotFound
from .hashing import StatCache, digest_file, digest_listed_files, list_folder_files
from .store.records import DatasetVersion
from .table_digests import digest_table, table_kind

_CSV_SAMPLE_ROWS = 1000


def is_dataframe(value: Any) -> bool:
    """True for a pandas DataFrame, without importing pandas when it isn't loaded."""
    return table_kind(value) == "pandas.DataFrame"


def is_table(value: Any) -> bool:
    """True for any in-memory table `describe_table` takes (pandas DataFrame or Series,
    numpy array, pyarrow Table, RecordBatch or array, polars DataFrame or Series),
    without importing a library the value doesn't come from."""
    return table_kind(value) is not None


def describe_table(value: Any) -> DatasetVersion:
    """Digest, size in memory, rows and schema (column -> dtype) of an in-memory table.

    Recorded with kind `dataframe` whatever the library. Raises `InvalidInput` for a
    value that is not a supported table or holds values with no canonical encoding.
    """
    digest = digest_table(value)
    kind = table_kind(value)
    size, rows, schema = _TABLE_SHAPES[kind](value) if kind else (None, None, None)
    return DatasetVersion(digest=digest, kind="dataframe", size=size, rows=rows, schema=schema)


def _pandas_frame_shape(df: Any) -> tuple[int, int, dict[str, str]]:
    return (int(df.memory_usage(index=True, deep=False).sum()), len(df),
            {str(k): str(v) for k, v in df.dtypes.items()})


def _pandas_series_shape(series: Any) -> tuple[int, int, dict[str, str]]:
    name = "0" if series.name is None else str(series.name)  # as Series.to_frame() names it
    return int(series.memory_usage(index=True, deep=False)), len(series), \
        {name: str(series.dtype)}


def _numpy_shape(array: Any) -> tuple[int, int | None, dict[str, str]]:
    rows = array.shape[0] if array.ndim else None
    if array.dtype.names is not None:
        schema = {name: str(array.dtype[name]) for name in array.dtype.names}
    else:
        schema = {"values": f"{array.dtype} {tuple(array.shape)}"}
    return int(array.nbytes), rows, schema


def _arrow_table_shape(table: Any) -> tuple[int, int, dict[str, str]]:
    return int(table.nbytes), table.num_rows, {f.name: str(f.type) for f in table.schema}


def _arrow_array_shape(array: Any) -> tuple[int, int, dict[str, str]]:
    return int(array.nbytes), len(array), {"values": str(array.type)}


def _polars_frame_shape(df: Any) -> tuple[int, int, dict[str, str]]:
    return int(df.estimated_size()), df.height, {k: str(v) for k, v in df.schema.items()}


def _polars_series_shape(series: Any) -> tuple[int, int, dict[str, str]]:
    return int(series.estimated_size()), len(series), {series.name: str(series.dtype)}


_TABLE_SHAPES = {
    "pandas.DataFrame": _pandas_frame_shape,
    "pandas.Series": _pandas_series_shape,
    "numpy.ndarray": _numpy_shape,
    "pyarrow.Table": _arrow_table_shape,
    "pyarrow.Array": _arrow_array_shape,
    "polars.DataFrame": _polars_frame_shape,
    "polars.Series": _polars_series_shape,
}


def describe_path(path: str | os.PathLike[str], cache: StatCache | None = None,
                  known: Any = None) -> DatasetVersion:
    """Digest, size, rows and schema of a file or folder.

    `known(digest) -> DatasetVersion | None` lets the caller skip the row count
    and schema when this digest was described before.
    """
    p = Path(path)
    if not p.exists():
        raise NotFound(f"no file or folder {p}")
    if p.is_dir():
        # The walk refuses links and unsafe names inside the folder (SymlinkRefused,
        # InvalidInput), so the size counts exactly the files the digest covers.
        files = list_folder_files(p)
        digest = digest_listed_files(files, cache)
        size = sum(full.size for _, full in files)  # as listed: no stat through a link
        return DatasetVersion(digest=digest, kind="folder", size=size, rows=None, schema=None)
    digest = digest_file(p, cache)
    previous = known(digest) if known is not None else None
    if previous is not None:
        return previous
    rows, schema = _shape(p)
    return DatasetVersion(digest=digest, kind="file", size=p.stat().st_size, rows=rows,
                          schema=schema)


def _shape(path: Path) -> tuple[int | None, dict[str, str] | None]:
    suffix = "".join(path.suffixes[-2:]).lower()
    try:
        if suffix.endswith(".parquet") or suffix.endswith(".pq"):
            return _parquet_shape(path)
        if suffix.endswith(".csv") or suffix.endswith(".tsv"):
            return _csv_shape(path, "\t" if suffix.endswith(".tsv") else ",")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path} as {suffix.lstrip('.')}: {exc}") from None
    return None, None


def _parquet_shape(path: Path) -> tuple[int, dict[str, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
    except pa.ArrowException as exc:
        raise ValueError(str(exc)) from None
    return metadata.num_rows, {field.name: str(field.type) for field in schema}


def _csv_shape(path: Path, delimiter: str) -> tuple[int, dict[str, str]]:
    import pandas as pd

    sample = pd.read_csv(path, sep=delimiter, nrows=_CSV_SAMPLE_ROWS)
    schema = {str(k): str(v) for k, v in sample.dtypes.items()}
    return _count_csv_rows(path, delimiter), schema


def _count_csv_rows(path: Path, delimiter: str) -> int:
    """Data rows (header excluded): a newline count, or the csv module when quotes appear
    (a quoted field may hold a newline)."""
    newlines, last, quoted = 0, b"", False
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            newlines += chunk.count(b"\n")
            quoted = quoted or b'"' in chunk
            last = chunk[-1:]
    if quoted:
        with open(path, newline="", encoding="utf-8") as f:
            return max(sum(1 for _ in csv.reader(f, delimiter=delimiter)) - 1, 0)
    lines = newlines + (1 if last not in (b"", b"\n") else 0)
    return max(lines - 1, 0)
