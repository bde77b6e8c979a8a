"""Pipeline runs and their step runs (the step cache lives here too)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from ..errors import NotFound
from .connection import write
from .ids import row_count, storable
from .records import FAILURE_KINDS, PipelineRun, StepFailure, StepRun

_STEP_COLUMNS = ("id, pipeline_run_id, step, status, run_id, cache_key, cached_from, params, "
                 "outputs, output_files, started_at, ended_at, error, notebook_path, failure, "
                 "warnings")
FAILURE_VERSION = 1  # the `version` of the JSON kept in step_runs.failure
_RUN_COLUMNS = ("id, name, spec_path, spec_digest, status, trigger, started_at, ended_at, "
                "error, heartbeat_at")


class PipelineRepository:
    def __init__(self, conn: sqlite3.Connection, stale_after_seconds: float) -> None:
        self._conn = conn
        self._stale_after = stale_after_seconds

    def start(self, name: str, spec_path: str, spec_digest: str, trigger: str,
              steps: list[str]) -> int:
        """A new pipeline run with every step `pending`."""
        now = time.time()
        with write(self._conn) as conn:
            run_id = conn.execute(
                "INSERT INTO pipeline_runs (name, spec_path, spec_digest, status, trigger,"
                " started_at, heartbeat_at) VALUES (?, ?, ?, 'running', ?, ?, ?)",
                (name, spec_path, spec_digest, trigger, now, now)).lastrowid
            conn.executemany("INSERT INTO step_runs (pipeline_run_id, step, status) "
                             "VALUES (?, ?, 'pending')", [(run_id, step) for step in steps])
        return int(run_id)

    def set_owner(self, pipeline_run_id: int, user: str) -> None:
        """Note who started a pipeline run through the team server."""
        with write(self._conn) as conn:
            conn.execute("INSERT INTO pipeline_run_owners (pipeline_run_id, user_name) "
                         "VALUES (?, ?)", (pipeline_run_id, user))

    def owner(self, pipeline_run_id: int) -> str | None:
        """Who started a pipeline run through the team server (None: not through it)."""
        row = self._conn.execute("SELECT user_name FROM pipeline_run_owners WHERE "
                                 "pipeline_run_id = ?", (pipeline_run_id,)).fetchone()
        return None if row is None else str(row[0])

    def heartbeat(self, pipeline_run_id: int) -> None:
        with write(self._conn) as conn:
            conn.execute("UPDATE pipeline_runs SET heartbeat_at = ? WHERE id = ?",
                         (time.time(), pipeline_run_id))

    def update_step(self, pipeline_run_id: int, step: str, **fields: Any) -> None:
        """Set step fields; mappings, `warnings` (a list) and `failure` are stored as JSON."""
        allowed = {"status", "run_id", "cache_key", "cached_from", "params", "outputs",
                   "output_files", "started_at", "ended_at", "error", "notebook_path",
                   "failure", "warnings"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown step fields {sorted(unknown)}")
        values = {k: json.dumps(v) if isinstance(v, Mapping) else v for k, v in fields.items()}
        if "failure" in fields:
            values["failure"] = _failure_json(fields["failure"])
        if "warnings" in fields:
            values["warnings"] = json.dumps(list(fields["warnings"] or ()))
        assignments = ", ".join(f"{key} = :{key}" for key in values)
        with write(self._conn) as conn:
            conn.execute(f"UPDATE step_runs SET {assignments} WHERE pipeline_run_id = :pr "
                         "AND step = :step", {**values, "pr": pipeline_run_id, "step": step})

    def finish(self, pipeline_run_id: int, status: str, error: str | None = None) -> None:
        """End the run; steps still pending or running end as `killed`/`skipped`."""
        now = time.time()
        with write(self._conn) as conn:
            conn.execute("UPDATE step_runs SET status = 'killed', ended_at = ? "
                         "WHERE pipeline_run_id = ? AND status = 'running'",
                         (now, pipeline_run_id))
            conn.execute("UPDATE step_runs SET status = 'skipped' "
                         "WHERE pipeline_run_id = ? AND status = 'pending'", (pipeline_run_id,))
            conn.execute("UPDATE pipeline_runs SET status = ?, ended_at = ?, error = ? "
                         "WHERE id = ?", (status, now, error, pipeline_run_id))

    def cached_step(self, cache_key: str) -> StepRun | None:
        """The latest successful execution with this cache key."""
        row = self._conn.execute(
            f"SELECT {_STEP_COLUMNS} FROM step_runs WHERE cache_key = ? AND status = 'finished'"
            " ORDER BY id DESC LIMIT 1", (cache_key,)).fetchone()
        return None if row is None else _step(row)

    def step_of_run(self, run_id: int) -> StepRun | None:
        """The step execution that made run `run_id` (not the later steps that reused it)."""
        row = None if not storable(run_id) else self._conn.execute(
            f"SELECT {_STEP_COLUMNS} FROM step_runs WHERE run_id = ? AND cached_from IS NULL "
            "ORDER BY id DESC LIMIT 1", (run_id,)).fetchone()
        return None if row is None else _step(row)

    def get(self, pipeline_run_id: int) -> PipelineRun:
        row = None if not storable(pipeline_run_id) else self._conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM pipeline_runs WHERE id = ?", (pipeline_run_id,)).fetchone()
        if row is None:
            raise NotFound(f"no pipeline run {pipeline_run_id}")
        return self._pipeline(row)

    def recent(self, name: str | None = None, limit: int = 20) -> list[PipelineRun]:
        sql = f"SELECT {_RUN_COLUMNS} FROM pipeline_runs"
        args: list[object] = []
        if name is not None:
            sql += " WHERE name = ?"
            args.append(name)
        rows = self._conn.execute(sql + " ORDER BY id DESC LIMIT ?",
                                  [*args, row_count(limit)]).fetchall()
        return [self._pipeline(row) for row in rows]

    def is_running(self, name: str) -> bool:
        """True when a pipeline run of `name` is running with a fresh heartbeat."""
        row = self._conn.execute(
            "SELECT 1 FROM pipeline_runs WHERE name = ? AND status = 'running' "
            "AND heartbeat_at >= ? LIMIT 1", (name, time.time() - self._stale_after)).fetchone()
        return row is not None

    def _pipeline(self, row: tuple) -> PipelineRun:
        (run_id, name, spec_path, digest, status, trigger, started, ended, error,
         heartbeat) = row
        steps = tuple(_step(r) for r in self._conn.execute(
            f"SELECT {_STEP_COLUMNS} FROM step_runs WHERE pipeline_run_id = ? ORDER BY id",
            (run_id,)))
        if status == "running" and heartbeat is not None and \
                heartbeat < time.time() - self._stale_after:
            # The runner died without finishing (kill -9, power loss): its steps are
            # swept with it, as `finish` would have: running -> killed, pending -> skipped.
            status = "killed"
            steps = tuple(_swept(step) for step in steps)
        return PipelineRun(id=run_id, name=name, spec_path=spec_path, spec_digest=digest,
                           status=status, trigger=trigger, started_at=started, ended_at=ended,
                           error=error, steps=steps)


def _swept(step: StepRun) -> StepRun:
    swept = {"running": "killed", "pending": "skipped"}.get(step.status)
    return step if swept is None else dataclasses.replace(step, status=swept)


def _failure_json(failure: StepFailure | None) -> str | None:
    if failure is None:
        return None
    return json.dumps({"version": FAILURE_VERSION, **dataclasses.asdict(failure)})


def _failure(text: str | None) -> StepFailure | None:
    """A kept failure; one from a newer or damaged row still reads, as what it says."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return StepFailure(kind="runner", message=f"unreadable failure record: {text[:200]}")
    if not isinstance(data, dict):
        data = {}
    kind = data.get("kind") if data.get("kind") in FAILURE_KINDS else "runner"

    def text_or_none(key: str) -> str | None:
        value = data.get(key)
        return None if value is None else str(value)

    cell = data.get("cell")
    traceback = data.get("traceback")
    return StepFailure(kind=kind, message=str(data.get("message") or ""),
                       cell=cell if isinstance(cell, int) else None,
                       source=text_or_none("source"), ename=text_or_none("ename"),
                       evalue=text_or_none("evalue"),
                       traceback=tuple(str(line) for line in traceback)
                       if isinstance(traceback, list) else ())


def _step(row: tuple) -> StepRun:
    (step_id, pr, step, status, run_id, key, cached_from, params, outputs, files, started,
     ended, error, notebook_path, failure, warnings) = row
    return StepRun(id=step_id, pipeline_run_id=pr, step=step, status=status, run_id=run_id,
                   cache_key=key, cached_from=cached_from, params=json.loads(params or "{}"),
                   outputs=json.loads(outputs or "{}"),
                   output_files=json.loads(files or "{}"), started_at=started, ended_at=ended,
                   error=error, notebook_path=notebook_path, failure=_failure(failure),
                   warnings=tuple(json.loads(warnings or "[]")))
