"""The store's tables, created and changed only by explicit, numbered migrations.

One set of migrations serves SQLite and PostgreSQL: each `_vN(db)` calls the
builder vocabulary of `store.ddl` (sqlite-utils' on SQLite, rendered as
PostgreSQL DDL on PostgreSQL). The schema version lives in SQLite's
`user_version`, or in PostgreSQL's one-row table `mlops_schema`. `migrate()`
takes the store's write lock (SQLite's `BEGIN IMMEDIATE`, PostgreSQL's
transaction-level advisory lock) before reading it, so when many processes
start at once each migration runs exactly once and the others find the work
done; PostgreSQL's DDL is transactional, so a failed migration leaves nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from .connection import write

SCHEMA_VERSION = 8


def _v1(db) -> None:  # db: sqlite_utils.Database
    db.create_table("environments", {"digest": str, "python": str, "packages": str},
                    pk="digest")
    db.create_table(
        "runs",
        {
            "id": int, "uuid": str, "name": str, "status": str,
            "started_at": float, "ended_at": float, "heartbeat_at": float,
            "notebook": str, "source_kind": str, "code_digest": str,
            "git_commit": str, "git_branch": str, "git_dirty": int,
            "python": str, "env_digest": str, "host": str, "user": str, "pid": int,
            "error": str,
        },
        pk="id",
        not_null={"uuid", "status", "started_at", "source_kind"},
        foreign_keys=[("env_digest", "environments", "digest")],
    )
    db["runs"].create_index(["uuid"], unique=True)
    db["runs"].create_index(["status"])
    db["runs"].create_index(["name"])
    db.create_table("params", {"run_id": int, "key": str, "value": str},
                    pk=("run_id", "key"), not_null={"value"},
                    foreign_keys=[("run_id", "runs", "id")])
    db["params"].create_index(["key", "value"])
    db.create_table("tags", {"run_id": int, "key": str, "value": str},
                    pk=("run_id", "key"), not_null={"value"},
                    foreign_keys=[("run_id", "runs", "id")])
    db["tags"].create_index(["key", "value"])
    db.create_table("metrics", {"run_id": int, "key": str, "value": float, "step": int,
                                "timestamp": float},
                    not_null={"run_id", "key", "timestamp"},
                    foreign_keys=[("run_id", "runs", "id")])
    db["metrics"].create_index(["run_id", "key", "step"])
    # One row per (run, key): the latest value, so filters never scan history.
    db.create_table("latest_metrics", {"run_id": int, "key": str, "value": float, "step": int,
                                       "timestamp": float},
                    pk=("run_id", "key"), foreign_keys=[("run_id", "runs", "id")])
    db["latest_metrics"].create_index(["key", "value"])
    db.create_table("dataset_versions", {"digest": str, "kind": str, "size": int, "rows": int,
                                         "schema": str, "created_at": float},
                    pk="digest", not_null={"kind", "created_at"})
    db.create_table("run_datasets", {"run_id": int, "digest": str, "role": str, "source": str},
                    pk=("run_id", "digest", "role"),
                    foreign_keys=[("run_id", "runs", "id"),
                                  ("digest", "dataset_versions", "digest")])
    db["run_datasets"].create_index(["digest"])
    db.create_table("artifacts", {"digest": str, "size": int, "created_at": float},
                    pk="digest", not_null={"size", "created_at"})
    db.create_table("run_artifacts", {"run_id": int, "name": str, "digest": str, "kind": str},
                    pk=("run_id", "name"), not_null={"digest", "kind"},
                    foreign_keys=[("run_id", "runs", "id"), ("digest", "artifacts", "digest")])
    db.create_table("model_versions", {"name": str, "version": int, "run_id": int,
                                       "digest": str, "flavor": str, "signature": str,
                                       "input_datasets": str, "created_at": float},
                    pk=("name", "version"), not_null={"digest", "flavor", "created_at"},
                    foreign_keys=[("run_id", "runs", "id"), ("digest", "artifacts", "digest")])
    db["model_versions"].create_index(["run_id"])


def _v2(db) -> None:
    """Pipelines: one row per pipeline run, one per step of it."""
    db.create_table(
        "pipeline_runs",
        {"id": int, "name": str, "spec_path": str, "spec_digest": str, "status": str,
         "trigger": str, "started_at": float, "ended_at": float, "heartbeat_at": float,
         "error": str},
        pk="id", not_null={"name", "status", "started_at", "trigger"},
    )
    db["pipeline_runs"].create_index(["name"])
    db.create_table(
        "step_runs",
        {"id": int, "pipeline_run_id": int, "step": str, "status": str, "run_id": int,
         "cache_key": str, "cached_from": int, "params": str, "outputs": str,
         "output_files": str, "started_at": float, "ended_at": float, "error": str,
         "notebook_path": str},
        pk="id", not_null={"pipeline_run_id", "step", "status"},
        foreign_keys=[("pipeline_run_id", "pipeline_runs", "id"), ("run_id", "runs", "id"),
                      ("cached_from", "step_runs", "id")],
    )
    db["step_runs"].create_index(["pipeline_run_id", "step"], unique=True)
    db["step_runs"].create_index(["cache_key", "status"])


def _v3(db) -> None:
    """Governance: aliases, evaluations, gate results, release requests, the audit log."""
    db.create_table("aliases", {"name": str, "alias": str, "version": int, "updated_at": float},
                    pk=("name", "alias"), not_null={"version", "updated_at"})
    db.create_table(
        "evaluations",
        {"id": int, "name": str, "version": int, "dataset_digest": str, "metrics": str,
         "created_at": float},
        pk="id", not_null={"name", "version", "dataset_digest", "metrics", "created_at"})
    db["evaluations"].create_index(["name", "version"])
    db.create_table(
        "gate_results",
        {"id": int, "name": str, "version": int, "gate": str, "against": str,
         "against_version": int, "passed": int, "value": float, "threshold": float,
         "dataset_digest": str, "reason": str, "evaluated_at": float},
        pk="id", not_null={"name", "version", "gate", "passed", "evaluated_at"})
    db["gate_results"].create_index(["name", "version"])
    db.create_table(
        "release_requests",
        {"id": int, "name": str, "version": int, "alias": str, "requester": str,
         "reason": str, "evidence": str, "status": str, "created_at": float,
         "decided_by": str, "decided_at": float, "decision_reason": str,
         "override_reason": str},
        pk="id", not_null={"name", "version", "alias", "requester", "reason", "status",
                           "created_at"})
    db["release_requests"].create_index(["status"])
    db.create_table(
        "audit_log",
        {"id": int, "at": float, "actor": str, "action": str, "subject": str, "reason": str,
         "payload": str, "prev_hash": str, "hash": str},
        pk="id", not_null={"at", "actor", "action", "subject", "payload", "prev_hash", "hash"})
    # The audit log is append-only: the database itself refuses to change or remove a row.
    db.append_only("audit_log", "the audit log is append-only")


def _v4(db) -> None:
    """Monitoring: reference profiles, and indexes of prediction and label batch files."""
    db.create_table("model_profiles", {"name": str, "version": int, "profile": str},
                    pk=("name", "version"), not_null={"profile"})
    db.create_table(
        "prediction_batches",
        {"id": int, "name": str, "version": int, "path": str, "rows": int, "errors": int,
         "first_at": float, "last_at": float, "source": str, "created_at": float},
        pk="id", not_null={"name", "path", "rows", "first_at", "last_at", "created_at"})
    db["prediction_batches"].create_index(["name", "last_at"])
    db.create_table(
        "label_batches",
        {"id": int, "name": str, "path": str, "rows": int, "created_at": float},
        pk="id", not_null={"name", "path", "rows", "created_at"})
    db["label_batches"].create_index(["name"])


def _v5(db) -> None:
    """Step failures kept whole, not flattened into `error`: `failure` is JSON (kind, cell,
    cell source, exception name and value, traceback), `warnings` a JSON list (a report
    that could not be rendered...); an index finds the step that made a run."""
    db["step_runs"].add_column("failure", str)
    db["step_runs"].add_column("warnings", str)
    db["step_runs"].create_index(["run_id"])


def _v6(db) -> None:
    """Compaction of the prediction log: the batch files a compaction merged are listed
    here in the transaction that indexes the merged file and drops theirs, and unlinked
    after it; a crash before the unlinks leaves them here for the next compaction."""
    db.create_table("retired_prediction_files", {"path": str, "name": str,
                                                 "retired_at": float},
                    pk="path", not_null={"name", "retired_at"})
    db["retired_prediction_files"].create_index(["name"])


def _v7(db) -> None:
    """Team server: API tokens (SHA-256 of the secret, user, roles), and record streams
    (a run's records applied up to `applied_seq`, and the model versions they made)."""
    db.create_table(
        "api_tokens",
        {"id": int, "user_name": str, "roles": str, "token_hash": str, "shown": str,
         "created_at": float, "expires_at": float, "revoked_at": float,
         "last_used_at": float},
        pk="id", not_null={"user_name", "roles", "token_hash", "shown", "created_at"})
    db["api_tokens"].create_index(["token_hash"], unique=True)
    db.create_table(
        "record_streams",
        {"uuid": str, "run_id": int, "user_name": str, "applied_seq": int,
         "updated_at": float},
        pk="uuid", not_null={"run_id", "user_name", "applied_seq", "updated_at"},
        foreign_keys=[("run_id", "runs", "id")])
    db.create_table("stream_models", {"stream": str, "seq": int, "name": str, "version": int},
                    pk=("stream", "seq"), not_null={"name", "version"})


def _v8(db) -> None:
    """Team server: who started each pipeline run through it (`POST /api/v1/pipelines`),
    so only that user moves it on (heartbeat, steps, finish)."""
    db.create_table("pipeline_run_owners", {"pipeline_run_id": int, "user_name": str},
                    pk="pipeline_run_id", not_null={"user_name"},
                    foreign_keys=[("pipeline_run_id", "pipeline_runs", "id")])


MIGRATIONS: list[Callable] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8]
assert len(MIGRATIONS) == SCHEMA_VERSION


def _postgresql(conn: object) -> bool:
    return getattr(conn, "dialect", "sqlite") == "postgresql"


def current_version(conn: sqlite3.Connection) -> int:
    if _postgresql(conn):
        if conn.execute("SELECT to_regclass('mlops_schema')").fetchone()[0] is None:
            return 0
        row = conn.execute("SELECT version FROM mlops_schema").fetchone()
        return 0 if row is None else row[0]
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Bring the schema up to `SCHEMA_VERSION`; return the versions applied now."""
    if current_version(conn) >= SCHEMA_VERSION:
        return []
    if _postgresql(conn):
        return _migrate_postgresql(conn)
    import sqlite_utils  # 0.3-0.5 s to import (it loads pandas): only when migrating

    from .ddl import SqliteSchema

    db = SqliteSchema(sqlite_utils.Database(conn))
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    applied = []
    with write(conn):
        version = current_version(conn)  # read again under the write lock
        for number in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[number - 1](db)
            applied.append(number)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
    return applied


def _migrate_postgresql(conn) -> list[int]:  # conn: postgres.PgConnection
    from .ddl import PgSchema

    db = PgSchema(conn)
    applied = []
    try:
        with write(conn):  # BEGIN + pg_advisory_xact_lock: one migrator at a time
            conn.execute("CREATE TABLE IF NOT EXISTS mlops_schema (version BIGINT NOT NULL)")
            version = current_version(conn)  # read again under the lock
            for number in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[number - 1](db)
                applied.append(number)
            conn.execute("DELETE FROM mlops_schema")
            conn.forget_catalog()  # the tables just made
            conn.execute("INSERT INTO mlops_schema (version) VALUES (?)", (SCHEMA_VERSION,))
    finally:
        conn.forget_catalog()
    return applied
