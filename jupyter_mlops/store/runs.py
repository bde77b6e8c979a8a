"""Runs and what they log: params, tags, metrics."""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from ..errors import Conflict, InvalidInput, NotFound
from ..validation import display_problem
from .connection import write
from .filters import ATTRIBUTES, compile_filter
from .ids import row_count, storable
from .records import RUN_STATUSES, MetricPoint, Run

_RUN_COLUMNS = ("id, uuid, name, status, started_at, ended_at, notebook, source_kind, "
                "code_digest, git_commit, git_branch, git_dirty, python, env_digest, host, "
                "\"user\", error, heartbeat_at")  # "user" is reserved in PostgreSQL
_METRIC_COLUMNS = ("run_id", "key", "value", "step", "timestamp")
_INSERT_METRIC = "INSERT INTO metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)"
_UPSERT_LATEST = (
    "INSERT INTO latest_metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, step = excluded.step, "
    "timestamp = excluded.timestamp "
    "WHERE excluded.step IS NULL OR latest_metrics.step IS NULL "
    "OR excluded.step >= latest_metrics.step"
)
# The same upsert on PostgreSQL, every key of a batch in one statement: one array per
# column (keys are distinct, as an upsert of one statement needs).
_PG_UPSERT_LATEST_ARRAYS = (
    "INSERT INTO latest_metrics (run_id, key, value, step, timestamp) "
    "SELECT * FROM unnest(CAST(? AS BIGINT[]), CAST(? AS TEXT[]), "
    "CAST(? AS DOUBLE PRECISION[]), CAST(? AS BIGINT[]), CAST(? AS DOUBLE PRECISION[])) "
    + _UPSERT_LATEST[_UPSERT_LATEST.index("ON CONFLICT"):]
)
MAX_KEY_LENGTH = 250
MAX_VALUE_LENGTH = 6000


@dataclass(frozen=True)
class NewRun:
    """What is known about a run when it starts."""

    uuid: str
    name: str | None
    started_at: float
    source_kind: str
    notebook: str | None = None
    code_digest: str | None = None
    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    python: str | None = None
    env_digest: str | None = None
    host: str | None = None
    user: str | None = None
    pid: int | None = None


def check_key(kind: str, key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"{kind} name must be a non-empty string of at most "
                           f"{MAX_KEY_LENGTH} characters, got {str(key)[:80]!r}")
    problem = display_problem(key)
    if problem is not None:
        raise InvalidInput(f"{kind} name {key!r} refused: {problem}")
    return key


class RunRepository:
    def __init__(self, conn: sqlite3.Connection, stale_after_seconds: float) -> None:
        self._conn = conn
        self._stale_after = stale_after_seconds

    # -- writing ---------------------------------------------------------

    def create(self, new: NewRun) -> int:
        if new.name is not None:
            if not isinstance(new.name, str) or len(new.name) > MAX_KEY_LENGTH:
                raise InvalidInput(f"a run name is a string of at most {MAX_KEY_LENGTH} "
                                   f"characters, got {str(new.name)[:80]!r}")
            if (problem := display_problem(new.name)) is not None:
                raise InvalidInput(f"run name {new.name!r} refused: {problem}")
        with write(self._conn) as conn:
            cursor = conn.execute(
                "INSERT INTO runs (uuid, name, status, started_at, heartbeat_at, notebook,"
                " source_kind, code_digest, git_commit, git_branch, git_dirty, python,"
                " env_digest, host, \"user\", pid) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?,"
                " ?, ?, ?, ?, ?)",
                (new.uuid, new.name, new.started_at, new.started_at, new.notebook,
                 new.source_kind, new.code_digest, new.git_commit, new.git_branch,
                 None if new.git_dirty is None else int(new.git_dirty), new.python,
                 new.env_digest, new.host, new.user, new.pid),
            )
            return int(cursor.lastrowid)

    def update_source(self, run_id: int, *, notebook: str | None, code_digest: str | None) -> None:
        with write(self._conn) as conn:
            conn.execute("UPDATE runs SET notebook = ?, code_digest = ? WHERE id = ?",
                         (notebook, code_digest, run_id))

    def heartbeat(self, run_id: int, at: float | None = None) -> None:
        with write(self._conn) as conn:
            conn.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ? AND status = 'running'",
                         (time.time() if at is None else at, run_id))

    def end(self, run_id: int, status: str, error: str | None = None,
            at: float | None = None) -> None:
        if status not in RUN_STATUSES or status == "running":
            raise InvalidInput(f"a run ends as finished, failed or killed, not {status!r}")
        with write(self._conn) as conn:
            conn.execute(
                "UPDATE runs SET status = ?, ended_at = ?, error = ? WHERE id = ?",
                (status, time.time() if at is None else at, error, run_id),
            )

    def log_params(self, run_id: int, params: Mapping[str, str]) -> None:
        """Record params; logging a key again with a different value is a `Conflict`."""
        rows = [(run_id, check_key("param", k), _check_value(k, v)) for k, v in params.items()]
        with write(self._conn) as conn:
            for _, key, value in rows:
                old = conn.execute("SELECT value FROM params WHERE run_id = ? AND key = ?",
                                   (run_id, key)).fetchone()
                if old is not None and old[0] != value:
                    raise Conflict(f"param {key!r} of run {run_id} is already {old[0]!r}; "
                                   f"refusing to change it to {value!r} (start a new run)")
            conn.executemany("INSERT OR IGNORE INTO params VALUES (?, ?, ?)", rows)

    def set_tags(self, run_id: int, tags: Mapping[str, str]) -> None:
        rows = [(run_id, check_key("tag", k), _check_value(k, v)) for k, v in tags.items()]
        with write(self._conn) as conn:
            conn.executemany("INSERT OR REPLACE INTO tags VALUES (?, ?, ?)", rows)

    def log_metrics(self, run_id: int, points: Sequence[tuple[str, float, int | None, float]]
                    ) -> None:
        """Record (key, value, step, timestamp) points in one transaction.

        Keys and values must already be checked (see `tracking`): this is the hot
        path, one `BEGIN IMMEDIATE`, two statements, one `COMMIT`. On PostgreSQL
        (the team server, a batch of a client's points) the points go in with one
        COPY, and every key's latest with one upsert of arrays.
        """
        rows = [(run_id, key, value, step, ts) for key, value, step, ts in points]
        if not rows:  # nothing to write (PostgreSQL's array upsert needs its arrays)
            return
        with write(self._conn) as conn:
            if len(rows) == 1:
                conn.execute(_INSERT_METRIC, rows[0])
                conn.execute(_UPSERT_LATEST, rows[0])
            elif getattr(conn, "dialect", "sqlite") == "postgresql":
                conn.copy_rows("metrics", _METRIC_COLUMNS, rows)  # one COPY, not a row each
                latest = _latest_per_key(rows)
                conn.execute(_PG_UPSERT_LATEST_ARRAYS,
                             [list(column) for column in zip(*latest, strict=True)])
            else:
                conn.executemany(_INSERT_METRIC, rows)
                conn.executemany(_UPSERT_LATEST, _latest_per_key(rows))

    # -- reading ---------------------------------------------------------

    def get(self, run_id: int) -> Run:
        if not storable(run_id):
            raise NotFound(f"no run with id {run_id}")
        runs = self._load(f"SELECT {_RUN_COLUMNS} FROM runs r WHERE r.id = :id", {"id": run_id})
        if not runs:
            raise NotFound(f"no run with id {run_id}")
        return runs[0]

    def resolve(self, ref: str | int) -> Run:
        """A run by id (`12`) or uuid prefix (at least 8 hex characters).

        A uuid prefix can be all digits (`858583593651`): a number that is no run's id
        is then looked up as a prefix, so a copied prefix always resolves.
        """
        text = str(ref).strip()
        missing: NotFound | None = None
        # "²".isdigit() is true too; past 4300 digits int() raises, and no id is that long
        if text.isascii() and text.isdigit() and len(text) <= 32:
            try:
                return self.get(int(text))
            except NotFound as exc:
                if len(text) < 8:
                    raise
                missing = exc  # said if no uuid starts with these digits either
        if len(text) >= 8 and all(c in "0123456789abcdef-" for c in text.lower()):
            rows = self._conn.execute("SELECT id FROM runs WHERE uuid LIKE ? LIMIT 2",
                                      (text.lower().replace("-", "") + "%",)).fetchall()
            if len(rows) == 1:
                return self.get(rows[0][0])
            if len(rows) > 1:
                raise InvalidInput(f"run reference {text!r} is ambiguous; give more characters")
        if missing is not None:
            raise missing
        raise NotFound(f"no run {text[:40]!r}: give a run id (e.g. 12) or a uuid prefix")

    def search(self, expression: str | None = None, *, limit: int = 100, offset: int = 0,
               notebook: str | None = None) -> list[Run]:
        """Runs matching a filter expression (and, if given, recorded from `notebook`),
        newest first. The notebook is a condition of its own, never spliced into the
        user's expression, so it can't change how that expression parses or push it
        past the filter's length and depth limits."""
        if limit < 0 or offset < 0:
            raise InvalidInput("limit and offset must not be negative")
        where, params = "1 = 1", {}
        if expression and expression.strip():
            compiled = compile_filter(expression)
            where, params = compiled.sql, dict(compiled.params)
        if notebook is not None:
            where = f"({where}) AND r.notebook = :notebook_path"
            params["notebook_path"] = notebook
        params.update(limit=row_count(limit), offset=row_count(offset))
        return self._load(f"SELECT {_RUN_COLUMNS} FROM runs r WHERE {where} "
                          "ORDER BY r.id DESC LIMIT :limit OFFSET :offset", params)

    def metric_history(self, run_id: int, key: str | None = None) -> list[MetricPoint]:
        sql = "SELECT key, value, step, timestamp FROM metrics WHERE run_id = ?"
        args: list[object] = [run_id]
        if key is not None:
            sql += " AND key = ?"
            args.append(key)
        rows = self._conn.execute(sql + " ORDER BY key, rowid", args).fetchall()
        return [MetricPoint(key, _metric(value), step, at) for key, value, step, at in rows]

    def _load(self, sql: str, params: dict[str, object]) -> list[Run]:
        params.setdefault("stale_before", time.time() - self._stale_after)
        rows = self._conn.execute(sql, params).fetchall()
        if not rows:
            return []
        ids = [row[0] for row in rows]
        params_by_run = self._key_values("params", ids)
        tags_by_run = self._key_values("tags", ids)
        metrics_by_run = self._key_values("latest_metrics", ids)
        stale_before = params["stale_before"]
        runs = []
        for row in rows:
            (run_id, uuid, name, status, started, ended, notebook, source_kind, code_digest,
             commit, branch, dirty, python, env_digest, host, user, error, heartbeat) = row
            if status == "running" and heartbeat is not None and heartbeat < stale_before:
                status = "killed"
            runs.append(Run(
                id=run_id, uuid=uuid, name=name, status=status, started_at=started,
                ended_at=ended, notebook=notebook, source_kind=source_kind,
                code_digest=code_digest, git_commit=commit, git_branch=branch,
                git_dirty=None if dirty is None else bool(dirty), python=python,
                env_digest=env_digest, host=host, user=user, error=error,
                params=params_by_run.get(run_id, {}), metrics=metrics_by_run.get(run_id, {}),
                tags=tags_by_run.get(run_id, {}),
            ))
        return runs

    def _key_values(self, table: str, ids: list[int]) -> dict[int, dict]:
        read = _metric if table == "latest_metrics" else _same
        result: dict[int, dict] = {}
        for run_id, key, value in self._key_value_rows(table, ids):
            result.setdefault(run_id, {})[key] = read(value)
        return result

    def _key_value_rows(self, table: str, ids: list[int]) -> Iterator[tuple]:
        """(run_id, key, value) of `table` for the runs `ids`. PostgreSQL gets them as
        one array parameter, which it looks up in the (run_id, key) key; 1,000
        placeholders would cost parsing, and are planned as a scan of the table.
        SQLite takes at most 999 placeholders a statement: chunks of 900."""
        if getattr(self._conn, "dialect", "sqlite") == "postgresql":
            yield from self._conn.execute(
                f"SELECT run_id, key, value FROM {table} WHERE run_id = ANY(?)", [ids])
            return
        for chunk in _chunks(ids, 900):
            marks = ",".join("?" * len(chunk))
            yield from self._conn.execute(
                f"SELECT run_id, key, value FROM {table} WHERE run_id IN ({marks})", chunk)


def _metric(value: float | None) -> float:
    """A stored metric value: SQLite keeps NaN as NULL (it has no NaN), and a metric row
    exists only when a value was logged, so NULL there reads back as NaN. Infinities
    are stored as themselves."""
    return math.nan if value is None else value


def _same(value: object) -> object:
    return value


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _latest_per_key(rows: list[tuple]) -> list[tuple]:
    """The row per key that should win the `latest_metrics` upsert (highest step, then last)."""
    latest: dict[str, tuple] = {}
    for row in rows:
        current = latest.get(row[1])
        if current is None or row[3] is None or current[3] is None or row[3] >= current[3]:
            latest[row[1]] = row
    return list(latest.values())


def _check_value(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"value of {key!r} must be a string here, got {type(value).__name__}")
    if "\x00" in value:  # PostgreSQL's text can't hold it: refused on both databases
        raise InvalidInput(f"value of {key!r} holds a NUL character (\\x00); remove it")
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidInput(f"value of {key!r} is {len(value)} characters long; the limit is "
                           f"{MAX_VALUE_LENGTH} (log large values as an artifact)")
    return value


__all__ = ["ATTRIBUTES", "NewRun", "RunRepository", "check_key"]
