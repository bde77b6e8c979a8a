"""Content digests of files, folders and DataFrames, written `blake3:<hex>`.

- A file's digest is BLAKE3 of its bytes (mmap, all cores).
- A folder's digest is a Merkle digest: BLAKE3 over the sorted relative POSIX
  paths of its files, each with its file digest.
- A DataFrame's digest is BLAKE3 over a framed encoding of its columns' own
  buffers (name, dtype, length, values, null mask), never over a text rendering,
  so it is fast and the same in every process.

`StatCache` remembers (path, size, mtime_ns, inode) -> digest so that an
unchanged file is not read again.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import time
from pathlib import Path
from typing import Any

import blake3

from .errors import InvalidInput
from .project import create_file_with_mode, make_dirs
from .validation import check_relative_path, split_digest

__all__ = ["ALGORITHM", "StatCache", "SymlinkRefused", "digest_bytes", "digest_dataframe",
           "digest_file", "digest_folder", "digest_path", "format_digest",
           "list_folder_files", "split_digest"]

ALGORITHM = "blake3"
_FOLDER_HEADER = b"jupyter-mlops folder v1\n"
_FRAME_HEADER = b"jupyter-mlops dataframe v1\n"
# Files modified this recently are not cached: a write within the file system's
# timestamp granularity could leave size and mtime unchanged ("racy clean").
_RACY_SECONDS = 0.05


def format_digest(hexdigest: str) -> str:
    return f"{ALGORITHM}:{hexdigest}"


def digest_bytes(data: bytes | memoryview) -> str:
    return format_digest(blake3.blake3(data).hexdigest())


def _hash_file(path: Path, size: int) -> str:
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    if size:
        hasher.update_mmap(path)
    return format_digest(hasher.hexdigest())


class StatCache:
    """A small SQLite table of (path, size, mtime_ns, inode) -> digest.

    Kept in its own file so that hashing never waits on the metadata store's
    write lock. A stale or unreadable cache only costs a re-hash.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            make_dirs(self.path.parent)
            create_file_with_mode(self.path)  # -wal and -shm take its mode
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS stat_cache (path TEXT PRIMARY KEY, size INTEGER,"
                " mtime_ns INTEGER, inode INTEGER, digest TEXT)"
            )
            self._conn = conn
        return self._conn

    def get(self, path: str, st: os.stat_result) -> str | None:
        row = self._connect().execute(
            "SELECT digest FROM stat_cache WHERE path = ? AND size = ? AND mtime_ns = ?"
            " AND inode = ?",
            (path, st.st_size, st.st_mtime_ns, st.st_ino),
        ).fetchone()
        return row[0] if row else None

    def put(self, path: str, st: os.stat_result, digest: str) -> None:
        self._connect().execute(
            "INSERT OR REPLACE INTO stat_cache VALUES (?, ?, ?, ?, ?)",
            (path, st.st_size, st.st_mtime_ns, st.st_ino, digest),
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def digest_file(path: str | os.PathLike[str], cache: StatCache | None = None) -> str:
    """BLAKE3 digest of a file's bytes, using `cache` to skip unchanged files."""
    file_path = Path(path)
    key = str(file_path.resolve())
    started = time.time()
    st = file_path.stat()
    if cache is not None:
        cached = cache.get(key, st)
        if cached is not None:
            return cached
    digest = _hash_file(file_path, st.st_size)
    if cache is not None and st.st_mtime_ns / 1e9 < started - _RACY_SECONDS:
        after = file_path.stat()
        if (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns):
            cache.put(key, st, digest)
    return digest


class SymlinkRefused(InvalidInput):
    """A logged folder holds a symbolic link, which jupyter-mlops does not follow."""

    def __init__(self, folder: Path, relative: str, target: str) -> None:
        self.folder = folder
        self.relative = relative
        self.target = target
        super().__init__(
            f"{folder} holds a symbolic link, {relative!r} -> {target!r}: links inside a "
            "logged folder are refused, so that no bytes from outside the folder are "
            "recorded or stored. Replace the link with a copy of the file, or log its "
            "target itself.")


def list_folder_files(folder: Path) -> list[tuple[str, Path]]:
    """Files under `folder` as sorted (relative POSIX path, path) pairs.

    `.git` folders are skipped. A symbolic link anywhere inside (to a file or
    a folder) raises `SymlinkRefused`, and a file whose relative path fails
    the name check (a newline, a backslash, ...) raises `InvalidInput`, both
    naming the entry. `folder` itself may be a link: the user named it. Uses
    `os.scandir`, whose entries know their type without another `stat`.
    """
    files: list[tuple[str, Path]] = []
    pending = [("", os.fspath(folder))]
    while pending:
        prefix, path = pending.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                relative = prefix + entry.name
                if entry.is_symlink():
                    raise SymlinkRefused(Path(folder), relative, _link_target(entry.path))
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != ".git":
                        check_relative_path(relative, folder)
                        pending.append((relative + "/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    files.append((check_relative_path(relative, folder), Path(entry.path)))
    files.sort(key=lambda item: item[0])
    return files


def _link_target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def digest_folder(path: str | os.PathLike[str], cache: StatCache | None = None) -> str:
    """Merkle digest of a folder: sorted relative paths, each with its file digest."""
    folder = Path(path)
    hasher = blake3.blake3()
    hasher.update(_FOLDER_HEADER)
    for relative, full in list_folder_files(folder):
        hasher.update(relative.encode("utf-8") + b"\0" + digest_file(full, cache).encode() + b"\n")
    return format_digest(hasher.hexdigest())


def digest_path(path: str | os.PathLike[str], cache: StatCache | None = None) -> str:
    p = Path(path)
    return digest_folder(p, cache) if p.is_dir() else digest_file(p, cache)


def digest_dataframe(df: Any) -> str:
    """Digest of a pandas DataFrame's index, column names, dtypes and values."""
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    hasher.update(_FRAME_HEADER)
    hasher.update(struct.pack("<qq", len(df), df.shape[1]))
    _hash_index(hasher, df.index)
    for name, column in df.items():
        _hash_frame(hasher, ("c:" + str(name)).encode("utf-8"), str(column.dtype))
        _hash_values(hasher, column)
    return format_digest(hasher.hexdigest())


def _hash_frame(hasher: Any, label: bytes, dtype: str) -> None:
    encoded = dtype.encode("utf-8")
    hasher.update(struct.pack("<I", len(label)) + label + struct.pack("<I", len(encoded)) + encoded)


def _hash_index(hasher: Any, index: Any) -> None:
    import pandas as pd

    if isinstance(index, pd.RangeIndex):
        hasher.update(b"range" + struct.pack("<qqq", index.start, index.stop, index.step))
        return
    _hash_frame(hasher, b"index", str(index.dtype))
    _hash_values(hasher, pd.Series(index))


def _hash_values(hasher: Any, column: Any) -> None:
    """Feed one column's values to `hasher` in a canonical, buffer-level form."""
    import numpy as np

    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biufcmM":
        values = np.ascontiguousarray(column.to_numpy())
        if values.dtype.byteorder == ">":
            values = values.astype(values.dtype.newbyteorder("<"))
        hasher.update(memoryview(values).cast("B"))
        return
    import pyarrow as pa

    try:
        array = pa.array(column, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        array = None  # e.g. an object column mixing ints and strings
    if array is not None and _arrow_encodable(array.type):
        _hash_arrow(hasher, array)
        return
    import pandas as pd

    hashed = pd.util.hash_pandas_object(column, index=False).to_numpy()
    hasher.update(b"pandas-hash" + memoryview(np.ascontiguousarray(hashed)).cast("B"))


def _arrow_encodable(typ: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(typ):
        return _arrow_encodable(typ.value_type)
    return (pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_binary(typ)
            or pa.types.is_large_binary(typ) or pa.types.is_primitive(typ))


def _hash_arrow(hasher: Any, array: Any) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    typ = array.type
    if pa.types.is_dictionary(typ):
        hasher.update(b"dict")
        _hash_arrow(hasher, array.dictionary)
        _hash_arrow(hasher, pc.cast(array.indices, pa.int64()))
        return
    if array.null_count:
        mask = np.ascontiguousarray(np.asarray(array.is_null()))
        hasher.update(b"nulls" + memoryview(mask).cast("B"))
    if pa.types.is_primitive(typ):
        values = array.fill_null(False if pa.types.is_boolean(typ) else 0) if array.null_count \
            else array
        hasher.update(memoryview(np.ascontiguousarray(values.to_numpy(zero_copy_only=False)))
                      .cast("B"))
        return
    binary = pc.cast(array.fill_null(b"") if array.null_count else array, pa.large_binary())
    if binary.offset:
        binary = pa.concat_arrays([binary])
    offsets = np.frombuffer(binary.buffers()[1], dtype="<i8")[binary.offset: len(binary) + 1]
    start, end = int(offsets[0]), int(offsets[-1])
    hasher.update(b"bin" + memoryview(np.ascontiguousarray(offsets - start)).cast("B"))
    if end > start:
        hasher.update(memoryview(binary.buffers()[2])[start:end])
