"""Fill a project's store with many runs quickly (bulk SQL), for the benchmarks."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path


def seed_runs(db_path: Path, count: int) -> None:
    """`count` finished runs, each with a param C and metrics acc and loss."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    now = time.time()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO runs (id, uuid, name, status, started_at, ended_at, heartbeat_at,"
        " source_kind, user) VALUES (?, ?, ?, 'finished', ?, ?, ?, 'script', 'bench')",
        ((i, uuid.uuid4().hex, f"run-{i}", now - i, now - i + 5, now)
         for i in range(1, count + 1)))
    conn.executemany("INSERT INTO params VALUES (?, 'C', ?)",
                     ((i, str(i % 10 / 10)) for i in range(1, count + 1)))
    conn.executemany("INSERT INTO latest_metrics VALUES (?, ?, ?, NULL, ?)",
                     ((i, key, (i * 7919 % 1000) / 1000, now) for i in range(1, count + 1)
                      for key in ("acc", "loss")))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
