"""Describe a dataset: its digest plus what we can cheaply learn of its shape.

Row counts and column schemas come from Parquet metadata (no data read), a
CSV header and a sample, or a DataFrame's dtypes.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from .errors import InvalidInput, NotFound
from .hashing import StatCache, digest_dataframe, digest_file, digest_folder, list_folder_files
from .store.records import DatasetVersion

_CSV_SAMPLE_ROWS = 1000


def is_dataframe(value: Any) -> bool:
    """True for a pandas DataFrame, without importing pandas when it isn't loaded."""
    module = type(value).__module__
    return module.split(".")[0] == "pandas" and type(value).__name__ == "DataFrame"


def describe_dataframe(df: Any) -> DatasetVersion:
    return DatasetVersion(digest=digest_dataframe(df), kind="dataframe",
                          size=int(df.memory_usage(index=True, deep=False).sum()),
                          rows=len(df), schema={str(k): str(v) for k, v in df.dtypes.items()})


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
        digest = digest_folder(p, cache)
        size = sum(full.stat().st_size for _, full in list_folder_files(p))
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
