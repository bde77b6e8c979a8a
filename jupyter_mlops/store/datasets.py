"""Dataset versions (content digests) and the runs that read or wrote them."""

from __future__ import annotations

import json
import sqlite3
import time

from ..errors import InvalidInput, NotFound
from .connection import write
from .records import DATASET_ROLES, DatasetVersion, RunDataset


class DatasetRepository:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, digest: str) -> DatasetVersion | None:
        row = self._conn.execute(
            "SELECT digest, kind, size, rows, schema FROM dataset_versions WHERE digest = ?",
            (digest,)).fetchone()
        return None if row is None else _version(row)

    def link(self, run_id: int, version: DatasetVersion, role: str, source: str) -> None:
        """Record `version` (once per digest) and link it to the run in `role`."""
        if role not in DATASET_ROLES:
            raise InvalidInput(f"dataset role must be one of {', '.join(DATASET_ROLES)}, "
                               f"got {role!r}")
        schema = None if version.schema is None else json.dumps(dict(version.schema))
        with write(self._conn) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO dataset_versions VALUES (?, ?, ?, ?, ?, ?)",
                (version.digest, version.kind, version.size, version.rows, schema, time.time()))
            conn.execute("INSERT OR REPLACE INTO run_datasets VALUES (?, ?, ?, ?)",
                         (run_id, version.digest, role, source))

    def for_run(self, run_id: int, role: str | None = None) -> list[RunDataset]:
        sql = ("SELECT d.digest, d.kind, d.size, d.rows, d.schema, rd.role, rd.source "
               "FROM run_datasets rd JOIN dataset_versions d ON d.digest = rd.digest "
               "WHERE rd.run_id = ?")
        args: list[object] = [run_id]
        if role is not None:
            sql += " AND rd.role = ?"
            args.append(role)
        rows = self._conn.execute(sql + " ORDER BY rd.rowid", args).fetchall()
        return [RunDataset(dataset=_version(row[:5]), role=row[5], source=row[6]) for row in rows]

    def recent(self, limit: int = 100, offset: int = 0) -> list[DatasetVersion]:
        """Dataset versions, the newest recorded first (the lab's Datasets tab)."""
        return [_version(row) for row in self._conn.execute(
            "SELECT digest, kind, size, rows, schema FROM dataset_versions "
            "ORDER BY created_at DESC, digest LIMIT ? OFFSET ?", (limit, offset))]

    def uses(self, digests: list[str]) -> list[tuple[str, int, str, str | None]]:
        """(digest, run id, role, source) of every run linked to one of `digests`: the
        runs of a page of versions in one query, not one per version."""
        if not digests:
            return []
        marks = ", ".join("?" for _ in digests)
        return [tuple(row) for row in self._conn.execute(
            f"SELECT digest, run_id, role, source FROM run_datasets WHERE digest IN ({marks}) "
            "ORDER BY run_id", list(digests))]

    def runs_using(self, digest: str) -> list[tuple[int, str]]:
        """(run id, role) pairs of every run linked to the dataset version."""
        if self.get(digest) is None:
            raise NotFound(f"no dataset version {digest}")
        return [tuple(row) for row in self._conn.execute(
            "SELECT run_id, role FROM run_datasets WHERE digest = ? ORDER BY run_id", (digest,))]


def _version(row: tuple) -> DatasetVersion:
    digest, kind, size, rows, schema = row
    return DatasetVersion(digest=digest, kind=kind, size=size, rows=rows,
                          schema=None if schema is None else json.loads(schema))
