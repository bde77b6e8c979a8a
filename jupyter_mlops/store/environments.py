"""Environment snapshots (Python + package versions), stored once per digest."""

from __future__ import annotations

import json
import sqlite3

from .connection import write
from .records import Environment


class EnvironmentRepository:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def save(self, environment: Environment) -> None:
        known = self._conn.execute("SELECT 1 FROM environments WHERE digest = ?",
                                   (environment.digest,)).fetchone()
        if known:
            return
        with write(self._conn) as conn:
            conn.execute("INSERT OR IGNORE INTO environments VALUES (?, ?, ?)",
                         (environment.digest, environment.python,
                          json.dumps(dict(environment.packages), sort_keys=True)))

    def get(self, digest: str) -> Environment | None:
        row = self._conn.execute("SELECT digest, python, packages FROM environments "
                                 "WHERE digest = ?", (digest,)).fetchone()
        return None if row is None else Environment(row[0], row[1], json.loads(row[2]))
