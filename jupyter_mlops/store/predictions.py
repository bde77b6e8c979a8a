"""Reference profiles and the index of prediction / label batch files.

The rows themselves live in Parquet files under `.mlops/predictions/` (fast to
scan for drift); these tables say which files hold which model's rows and when.
A file is part of the log exactly when its batch row is here: compaction swaps
many rows for one in a single transaction (`replace_batches`), so a reader's
listing holds either the small files or the merged one, never both.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .connection import write


@dataclass(frozen=True)
class PredictionBatch:
    id: int
    name: str
    version: int | None
    path: str
    rows: int
    errors: int
    first_at: float
    last_at: float
    source: str  # service | batch


class PredictionRepository:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def save_profile(self, name: str, version: int, profile: Mapping[str, Any]) -> None:
        with write(self._conn) as conn:
            conn.execute("INSERT OR REPLACE INTO model_profiles VALUES (?, ?, ?)",
                         (name, version, json.dumps(profile)))

    def profile(self, name: str, version: int) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT profile FROM model_profiles WHERE name = ? AND "
                                 "version = ?", (name, version)).fetchone()
        return None if row is None else json.loads(row[0])

    def add_batch(self, name: str, version: int | None, path: str, rows: int, errors: int,
                  first_at: float, last_at: float, source: str) -> int:
        """Index one batch file; returns its id."""
        with write(self._conn) as conn:
            return _insert_batch(conn, name, version, path, rows, errors, first_at, last_at,
                                 source)

    def batches(self, name: str, since: float | None = None) -> list[PredictionBatch]:
        """The batch files of `name` (holding rows at or after `since`), in the log's order:
        by first row's time, then by when they were indexed."""
        sql = ("SELECT id, name, version, path, rows, errors, first_at, last_at, source "
               "FROM prediction_batches WHERE name = ?")
        args: list[object] = [name]
        if since is not None:
            sql += " AND last_at >= ?"
            args.append(since)
        return [PredictionBatch(*row)
                for row in self._conn.execute(sql + " ORDER BY first_at, id", args)]

    def replace_batches(self, name: str, retired: Sequence[PredictionBatch], path: str,
                        rows: int, errors: int, source: str) -> int | None:
        """One transaction: index the file `path` that holds every row of `retired`, drop
        their batch rows and list their files as retired (to unlink). Returns the new
        batch's id, or None (and nothing changed) when one of `retired` is no longer in
        the index."""
        versions = {b.version for b in retired}
        version = versions.pop() if len(versions) == 1 else None
        with write(self._conn) as conn:
            ids = [b.id for b in retired]
            marks = ", ".join("?" * len(ids))
            found = set(conn.execute(f"SELECT id, path FROM prediction_batches WHERE name = ? "
                                     f"AND id IN ({marks})", [name, *ids]))
            if found != {(b.id, b.path) for b in retired}:
                return None
            conn.execute(f"DELETE FROM prediction_batches WHERE id IN ({marks})", ids)
            now = time.time()
            conn.executemany("INSERT OR REPLACE INTO retired_prediction_files VALUES (?, ?, ?)",
                             [(b.path, name, now) for b in retired])
            return _insert_batch(conn, name, version, path, rows, errors,
                                 min(b.first_at for b in retired),
                                 max(b.last_at for b in retired), source)

    def retired_files(self, name: str) -> list[str]:
        """Files a compaction took out of the index and has not unlinked yet."""
        return [row[0] for row in self._conn.execute(
            "SELECT path FROM retired_prediction_files WHERE name = ? ORDER BY retired_at",
            (name,))]

    def forget_retired(self, paths: Sequence[str]) -> None:
        """The retired files `paths` are gone from disk."""
        if not paths:
            return
        with write(self._conn) as conn:
            conn.executemany("DELETE FROM retired_prediction_files WHERE path = ?",
                             [(p,) for p in paths])

    def indexed_paths(self, name: str) -> set[str]:
        return {row[0] for row in self._conn.execute(
            "SELECT path FROM prediction_batches WHERE name = ?", (name,))}

    def add_labels(self, name: str, path: str, rows: int) -> None:
        with write(self._conn) as conn:
            conn.execute("INSERT INTO label_batches (name, path, rows, created_at) "
                         "VALUES (?, ?, ?, ?)", (name, path, rows, time.time()))

    def label_files(self, name: str) -> list[str]:
        return [row[0] for row in self._conn.execute(
            "SELECT path FROM label_batches WHERE name = ? ORDER BY id", (name,))]

    def monitored_models(self) -> list[str]:
        return [row[0] for row in self._conn.execute(
            "SELECT DISTINCT name FROM prediction_batches ORDER BY name")]


def _insert_batch(conn: sqlite3.Connection, name: str, version: int | None, path: str,
                  rows: int, errors: int, first_at: float, last_at: float, source: str) -> int:
    cursor = conn.execute(
        "INSERT INTO prediction_batches (name, version, path, rows, errors, first_at, "
        "last_at, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (name, version, path, rows, errors, first_at, last_at, source, time.time()))
    return int(cursor.lastrowid or 0)
