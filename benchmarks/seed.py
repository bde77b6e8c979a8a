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


def seed_datasets(db_path: Path, versions: int, runs: int) -> None:
    """`versions` dataset versions, each read by two of the first `runs` runs and
    written by one (the runs must exist: `seed_runs` first)."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    now = time.time()
    digest = "blake3:{:064x}".format
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO dataset_versions (digest, kind, size, rows, schema, created_at)"
        " VALUES (?, 'table', ?, ?, ?, ?)",
        ((digest(i), 1000 + i, 100 + i, '{"x": "float64", "y": "int64"}', now - i)
         for i in range(1, versions + 1)))
    conn.executemany(
        "INSERT INTO run_datasets (run_id, digest, role, source) VALUES (?, ?, ?, ?)",
        ((run, digest(i), role, f"data/part-{i}.parquet")
         for i in range(1, versions + 1)
         for run, role in (((i * 3) % runs + 1, "input"), ((i * 3 + 1) % runs + 1, "input"),
                           ((i * 3 + 2) % runs + 1, "output"))))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def seed_pipelines(db_path: Path, count: int, steps: int = 3) -> None:
    """`count` finished pipeline runs of `steps` steps each, every step with its run
    (runs 1 to count * steps must exist: `seed_runs` first)."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    now = time.time()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO pipeline_runs (id, name, spec_path, spec_digest, status, trigger,"
        " started_at, ended_at, heartbeat_at) VALUES (?, 'train', 'pipelines/train.yaml',"
        " 'blake3:0', 'finished', 'manual', ?, ?, ?)",
        ((i, now - i * 60, now - i * 60 + 30, now) for i in range(1, count + 1)))
    conn.executemany(
        "INSERT INTO step_runs (pipeline_run_id, step, status, run_id, started_at, ended_at,"
        " notebook_path) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((i, f"step-{s}", "cached" if s else "finished", (i - 1) * steps + s + 1,
          now - i * 60 + s * 10, now - i * 60 + s * 10 + 9, f"/nowhere/step-{s}.ipynb")
         for i in range(1, count + 1) for s in range(steps)))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
