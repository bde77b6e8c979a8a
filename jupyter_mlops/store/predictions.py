"""Reference profiles and the index of prediction / label batch files.

The rows themselves live in Parquet files under `.mlops/predictions/` (fast to
scan for drift); these tables say which files hold which model's rows and when.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
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
                  first_at: float, last_at: float, source: str) -> None:
        with write(self._conn) as conn:
            conn.execute(
                "INSERT INTO prediction_batches (name, version, path, rows, errors, first_at, "
                "last_at, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, path, rows, errors, first_at, last_at, source, time.time()))

    def batches(self, name: str, since: float | None = None) -> list[PredictionBatch]:
        sql = ("SELECT id, name, version, path, rows, errors, first_at, last_at, source "
               "FROM prediction_batches WHERE name = ?")
        args: list[object] = [name]
        if since is not None:
            sql += " AND last_at >= ?"
            args.append(since)
        return [PredictionBatch(*row) for row in self._conn.execute(sql + " ORDER BY id", args)]

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
