"""POST /api/v1/import: an embedded project's records copied into the team server
(`mlops push`), idempotently.

The client (`remote/push.py`) uploads the project's blobs first (blobs/missing,
then PUT), then sends its rows in batches of *items* (`{"kind": ..., ...}`,
values in `store.codec`'s tagged JSON so NaN and infinities travel). The whole
batch is checked before anything is written, then applied in one
`Store.transaction()`: a server killed mid-batch has all of it or none of it.

Each kind is skipped when the server already has it, so pushing twice adds
nothing and an interrupted push is finished by pushing again:

- environments, dataset versions, artifacts (rows): by digest; an artifact row
  whose blob the server lacks is refused (409: files first, records after);
- runs: by uuid (a run pushed while it ran gets its end on the next push).
  A run keeps its id when that id is free on the server, else it
  gets the next one (the answer's `ids.run` says which). Its params, tags,
  latest metrics, dataset and artifact links come with it; its metric history
  comes in `metrics` items numbered by `offset`, and the server inserts only
  the points past the ones it holds for that run;
- model versions: by (name, version); the same name and version with another
  digest is a 409 naming both, and nothing of the batch is written. So
  `churn:3` means the same bytes on both sides;
- aliases: by (name, alias). One pointing elsewhere on the server is kept when
  the project's move of it was pushed before (the team moved it since); else
  the registries diverged: a 409;
- release requests, evaluations, gate results, pipeline runs and their steps:
  by their natural keys (what, when); they keep their ids when free;
- audit rows: re-appended to the server's chain under the server's key (the
  project's key never leaves the project), with the original action, subject,
  actor and reason, and the payload marked `"imported": {"from", "by", "id",
  "at", "hash"}`; a row whose original hash is already imported is skipped.

On PostgreSQL the identity sequences are moved past explicit ids (`setval`) in
the batch's transaction.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ..artifacts import ArtifactStore
from ..errors import Conflict, InvalidInput
from ..store import Store, audit, codec
from ..store.exchange import KINDS, MAX_CELL, MAX_PROJECT_LABEL, MAX_ROWS_PER_ITEM, STEP_RUN
from ..store.ids import MAX_INTEGER
from ..team_protocol import MAX_RECORDS_PER_BATCH, PayloadTooLarge
from ..validation import check_digest

UUID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Tables whose rows may be inserted with an explicit id (their sequences move after).
ID_TABLES = ("runs", "pipeline_runs", "step_runs", "release_requests", "evaluations",
             "gate_results")


# -- checking ------------------------------------------------------------------------------

def check_import(body: object) -> tuple[str, list[dict[str, Any]]]:
    """The project label and the items of an import body, every value checked.

    Raises `InvalidInput` (422) for anything but the shapes above, `PayloadTooLarge`
    for too many items; nothing is written before the whole body passed.
    """
    if not isinstance(body, dict) or set(body) - {"project", "items"}:
        raise InvalidInput('the body must be {"project": LABEL, "items": [...]}')
    project = body.get("project")
    if not isinstance(project, str) or not 0 < len(project) <= MAX_PROJECT_LABEL:
        raise InvalidInput(f"'project' must be a label of 1 to {MAX_PROJECT_LABEL} characters")
    items = codec.decode(body.get("items"))
    if not isinstance(items, list) or not items:
        raise InvalidInput("'items' must be a non-empty list")
    if len(items) > MAX_RECORDS_PER_BATCH:
        raise PayloadTooLarge(f"{len(items)} items: send at most {MAX_RECORDS_PER_BATCH} "
                              "per batch")
    return project, [_check_item(item, number) for number, item in enumerate(items, 1)]


def _check_item(item: object, number: int) -> dict[str, Any]:
    if not isinstance(item, dict) or not isinstance(item.get("kind"), str):
        raise InvalidInput(f"item {number} must be an object with a 'kind'")
    kind = item["kind"]
    if kind not in KINDS:
        raise InvalidInput(f"item {number}: unknown kind {kind[:60]!r} (known: "
                           f"{', '.join(KINDS)})")
    columns, lists = KINDS[kind]
    where = f"item {number} ({kind})"
    row = item.get("row")
    if not isinstance(row, dict):
        raise InvalidInput(f"{where}: 'row' must be an object")
    unknown = set(item) - {"kind", "row", *lists}
    if unknown:
        raise InvalidInput(f"{where}: unknown field {sorted(unknown)[0][:60]!r}")
    if set(row) != set(columns):
        wrong = sorted(set(row) ^ set(columns))[0]
        raise InvalidInput(f"{where}: the row {'lacks' if wrong in columns else 'has no'} "
                           f"column {wrong[:60]!r}")
    for column, spec in columns.items():
        _check_value(row[column], spec, f"{where} column {column}")
    checked = {"kind": kind, "row": row}
    for field, spec in lists.items():
        values = item.get(field, [])
        if not isinstance(values, list) or len(values) > MAX_ROWS_PER_ITEM:
            raise InvalidInput(f"{where}: '{field}' must be a list of at most "
                               f"{MAX_ROWS_PER_ITEM} rows")
        for index, values_row in enumerate(values):
            if not isinstance(values_row, list) or len(values_row) != len(spec):
                raise InvalidInput(f"{where}: {field}[{index}] must be a list of "
                                   f"{len(spec)} values")
            for value, kind_of in zip(values_row, spec, strict=True):
                _check_value(value, kind_of, f"{where} {field}[{index}]")
        checked[field] = values
    if kind == "metrics" and row["offset"] < 0:
        raise InvalidInput(f"{where}: the offset must be 0 or more")
    if "uuid" in row and not UUID.fullmatch(row["uuid"]):
        raise InvalidInput(f"{where}: uuid {row['uuid'][:60]!r} is not a run uuid")
    if kind == "audit":
        try:
            payload = json.loads(row["payload"])
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise InvalidInput(f"{where}: the payload must be a JSON object")
    return checked


def _check_value(value: object, spec: str, where: str) -> None:
    kind, nullable = spec[0], spec.endswith("?")
    if value is None:
        if not nullable:
            raise InvalidInput(f"{where} must not be null")
        return
    if kind == "i":
        if isinstance(value, bool) or not isinstance(value, int) or \
                not -MAX_INTEGER - 1 <= value <= MAX_INTEGER:
            raise InvalidInput(f"{where} must be a 64-bit integer, got {str(value)[:40]!r}")
    elif kind == "f":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, int) and abs(value) > 2**53):
            raise InvalidInput(f"{where} must be a number, got {str(value)[:40]!r}")
    elif not isinstance(value, str) or len(value) > MAX_CELL or "\x00" in value or \
            not _encodable(value):
        raise InvalidInput(f"{where} must be a text of at most {MAX_CELL} characters, "
                           "in UTF-8, without NUL")
    elif kind == "d":
        check_digest(value, where)


def _encodable(text: str) -> bool:
    """Whether `text` is text (JSON's "\\ud800" decodes to a lone surrogate, which no
    database column takes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- applying ------------------------------------------------------------------------------

class Import:
    """One batch being applied: the transaction's connection, what was added or found."""

    def __init__(self, conn: Any, artifacts: ArtifactStore, user: str, project: str) -> None:
        self.conn = conn
        self.artifacts = artifacts
        self.user = user
        self.project = project
        self.added: Counter[str] = Counter()
        self.present: Counter[str] = Counter()
        self.ids: dict[str, list[list[Any]]] = {"run": [], "release_request": []}
        self._imported: set[str] | None = None

    def one(self, sql: str, params: tuple = ()) -> tuple | None:
        return self.conn.execute(sql, params).fetchone()

    def insert(self, table: str, row: Mapping[str, Any], keep_id: bool = False) -> int | None:
        """Insert `row`, with its id when `keep_id` and that id is free; the new id."""
        values = dict(row)
        if "id" in values and not (keep_id and self.one(
                f"SELECT 1 FROM {table} WHERE id = ?", (values["id"],)) is None):
            del values["id"]
        names = ", ".join(f'"{c}"' if c == "user" else c for c in values)
        cursor = self.conn.execute(
            f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(values))})",
            tuple(values.values()))
        return values["id"] if "id" in values else cursor.lastrowid

    def run_id(self, uuid: str | None, where: str) -> int | None:
        if uuid is None:
            return None
        found = self.one("SELECT id FROM runs WHERE uuid = ?", (uuid,))
        if found is None:
            raise Conflict(f"{where} names run {uuid}, which the server does not have: send "
                           "the run first (nothing of this batch was written)")
        return found[0]

    def imported_hashes(self) -> set[str]:
        """The original hashes of the audit rows imported so far: read once per batch
        (one pass over the imported rows; a lookup per row made a push quadratic)."""
        if self._imported is None:
            self._imported = set()
            for (text,) in self.conn.execute("SELECT payload FROM audit_log WHERE payload "
                                             "LIKE '%\"imported\":{%'"):
                mark = json.loads(text).get("imported")
                if isinstance(mark, dict) and isinstance(mark.get("hash"), str):
                    self._imported.add(mark["hash"])
        return self._imported

    def count(self, kind: str, added: bool, n: int = 1) -> None:
        (self.added if added else self.present)[kind] += n


def apply_import(store: Store, artifacts: ArtifactStore, user: str, project: str,
                 items: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply checked items in one transaction; what was added, what was there, new ids.

    Raises `Conflict` (409) for a clash (a model version or alias that differs, a
    blob or run the batch needs and the server lacks): nothing is written.
    """
    with store.transaction() as conn:
        batch = Import(conn, artifacts, user, project)
        for item in items:
            APPLY[item["kind"]](batch, item)
        if store.dialect == "postgresql":
            for table in ID_TABLES:
                conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                             f"max(id)) FROM {table} HAVING max(id) IS NOT NULL")
    return {"added": dict(batch.added), "present": dict(batch.present), "ids": batch.ids}


def _by_digest(table: str, kind: str) -> Any:
    def apply(batch: Import, item: dict[str, Any]) -> None:
        row = item["row"]
        if kind == "artifact" and batch.artifacts.stored_size(row["digest"]) is None:
            raise Conflict(f"artifact {row['digest']}: the server does not have its bytes; "
                           "upload the blob first (nothing of this batch was written)")
        there = batch.one(f"SELECT 1 FROM {table} WHERE digest = ?", (row["digest"],))
        if there is None:
            batch.insert(table, row)
        batch.count(kind, there is None)
    return apply


def _run(batch: Import, item: dict[str, Any]) -> None:
    row = item["row"]
    found = batch.one("SELECT id FROM runs WHERE uuid = ?", (row["uuid"],))
    if found is not None:
        run_id = found[0]
        _end_if_ended(batch, run_id, row)
    else:
        if row["env_digest"] is not None and batch.one(
                "SELECT 1 FROM environments WHERE digest = ?", (row["env_digest"],)) is None:
            row = {**row, "env_digest": None}  # an environment the project lost
        run_id = batch.insert("runs", row, keep_id=True)
    batch.count("run", found is None)
    batch.ids["run"].append([row["uuid"], run_id])
    insert = "INSERT OR IGNORE INTO"
    batch.conn.executemany(f"{insert} params (run_id, key, value) VALUES (?, ?, ?)",
                           [(run_id, *values) for values in item["params"]])
    batch.conn.executemany(f"{insert} tags (run_id, key, value) VALUES (?, ?, ?)",
                           [(run_id, *values) for values in item["tags"]])
    batch.conn.executemany(f"{insert} latest_metrics (run_id, key, value, step, timestamp) "
                           "VALUES (?, ?, ?, ?, ?)",
                           [(run_id, *values) for values in item["latest_metrics"]])
    for digest, role, source in item["datasets"]:
        if batch.one("SELECT 1 FROM dataset_versions WHERE digest = ?", (digest,)) is None:
            raise Conflict(f"run {row['uuid']} read or wrote dataset {digest}, which the "
                           "server does not have: send it first")
        batch.conn.execute(f"{insert} run_datasets (run_id, digest, role, source) VALUES "
                           "(?, ?, ?, ?)", (run_id, digest, role, source))
    for name, digest, kind in item["artifacts"]:
        if batch.one("SELECT 1 FROM artifacts WHERE digest = ?", (digest,)) is None:
            raise Conflict(f"run {row['uuid']} links artifact {digest}, which the server "
                           "does not have: send it first")
        batch.conn.execute(f"{insert} run_artifacts (run_id, name, digest, kind) VALUES "
                           "(?, ?, ?, ?)", (run_id, name, digest, kind))


def _end_if_ended(batch: Import, run_id: int, row: Mapping[str, Any]) -> None:
    """A run pushed while it was running, and ended in the project since: its end is
    copied (status, end time, error, source), so the next push finishes it there too."""
    if row["status"] == "running":
        return
    batch.conn.execute("UPDATE runs SET status = ?, ended_at = ?, heartbeat_at = ?, "
                       "error = ?, notebook = ?, code_digest = ? WHERE id = ? AND "
                       "status = 'running'",
                       (row["status"], row["ended_at"], row["heartbeat_at"], row["error"],
                        row["notebook"], row["code_digest"], run_id))


def _metrics(batch: Import, item: dict[str, Any]) -> None:
    """Points `offset`, `offset + 1`, ... of a run's history: only those past the ones the
    server holds for that run are inserted, so a batch sent again adds nothing."""
    run_id = batch.run_id(item["row"]["run"], "a metrics item")
    offset, points = item["row"]["offset"], item["points"]
    held = batch.one("SELECT COUNT(*) FROM metrics WHERE run_id = ?", (run_id,))[0]
    if held < offset:
        raise Conflict(f"run {item['row']['run']} has {held} metric points on the server and "
                       f"this batch starts at point {offset}: send the ones before first")
    new = points[held - offset:]
    batch.conn.executemany("INSERT INTO metrics (run_id, key, value, step, timestamp) VALUES "
                           "(?, ?, ?, ?, ?)", [(run_id, *point) for point in new])
    batch.count("metric", True, len(new))
    batch.count("metric", False, len(points) - len(new))


def _model_version(batch: Import, item: dict[str, Any]) -> None:
    row = item["row"]
    ref = f"{row['name']}:{row['version']}"
    found = batch.one("SELECT digest FROM model_versions WHERE name = ? AND version = ?",
                      (row["name"], row["version"]))
    if found is not None and found[0] != row["digest"]:
        raise Conflict(f"model version {ref} is {found[0]} on the server but {row['digest']} "
                       "in this project: the two registries diverged, so nothing of this "
                       "batch was written (rename the model in one of them, or push to "
                       "another server)")
    if found is None:
        if batch.one("SELECT 1 FROM artifacts WHERE digest = ?", (row["digest"],)) is None:
            raise Conflict(f"model version {ref}: the server has no artifact "
                           f"{row['digest']}; send it first")
        values = {**row, "run_id": batch.run_id(row["run"], f"model version {ref}")}
        del values["run"]
        batch.insert("model_versions", values)
    batch.count("model_version", found is None)


def _model_profile(batch: Import, item: dict[str, Any]) -> None:
    row = item["row"]
    there = batch.one("SELECT 1 FROM model_profiles WHERE name = ? AND version = ?",
                      (row["name"], row["version"]))
    if there is None:
        batch.insert("model_profiles", row)
    batch.count("model_profile", there is None)


def _alias(batch: Import, item: dict[str, Any]) -> None:
    row = item["row"]
    found = batch.one("SELECT version FROM aliases WHERE name = ? AND alias = ?",
                      (row["name"], row["alias"]))
    if found is not None and found[0] != row["version"] and _moved_since_push(batch, row):
        batch.count("alias", False)
        return
    if found is not None and found[0] != row["version"]:
        raise Conflict(f"alias {row['name']}@{row['alias']} points at version {found[0]} on "
                       f"the server but at {row['version']} in this project; nothing of this "
                       "batch was written (move one of them so they agree, then push again)")
    if found is None:
        if batch.one("SELECT 1 FROM model_versions WHERE name = ? AND version = ?",
                     (row["name"], row["version"])) is None:
            raise Conflict(f"alias {row['name']}@{row['alias']} points at version "
                           f"{row['version']}, which the server does not have")
        batch.insert("aliases", row)
    batch.count("alias", found is None)


def _moved_since_push(batch: Import, row: Mapping[str, Any]) -> bool:
    """Whether the project's move of this alias was pushed before (its "alias moved" row
    is here, imported), so the server's differing alias is the team's later move, which
    a push never undoes; otherwise the two registries diverged."""
    marker = json.dumps({"alias": row["alias"]}, separators=(",", ":"))[1:-1]
    return batch.one("SELECT 1 FROM audit_log WHERE action = 'alias moved' AND subject = ? "
                     "AND payload LIKE ? AND payload LIKE ?",
                     (f"{row['name']}:{row['version']}", f"%{marker}%",
                      '%"imported":{%')) is not None


def _by_key(table: str, kind: str, key: tuple[str, ...]) -> Any:
    """Rows with an id of their own: found by what they are about and when."""
    def apply(batch: Import, item: dict[str, Any]) -> None:
        row = item["row"]
        where = " AND ".join(f"{column} = ?" for column in key)
        found = batch.one(f"SELECT id FROM {table} WHERE {where}",
                          tuple(row[column] for column in key))
        new_id = found[0] if found is not None else batch.insert(table, row, keep_id=True)
        batch.count(kind, found is None)
        if kind in batch.ids:
            batch.ids[kind].append([row["id"], new_id])
    return apply


def _pipeline_run(batch: Import, item: dict[str, Any]) -> None:
    row = item["row"]
    found = batch.one("SELECT id FROM pipeline_runs WHERE name = ? AND started_at = ?",
                      (row["name"], row["started_at"]))
    pipeline_id = found[0] if found is not None else batch.insert("pipeline_runs", row,
                                                                  keep_id=True)
    batch.count("pipeline_run", found is None)
    for values in item["steps"]:
        step = dict(zip(STEP_RUN, values, strict=True))
        if batch.one("SELECT 1 FROM step_runs WHERE pipeline_run_id = ? AND step = ?",
                     (pipeline_id, step["step"])) is not None:
            continue
        step["run_id"] = batch.run_id(step.pop("run"), f"pipeline step {step['step']}")
        step["cached_from"] = _cached_from(batch, step["cached_from"])
        step["pipeline_run_id"] = pipeline_id
        batch.insert("step_runs", step, keep_id=True)


def _cached_from(batch: Import, key: str | None) -> int | None:
    """The step a cached step reused, named `PIPELINE_NAME STARTED_AT STEP` as JSON."""
    if key is None:
        return None
    try:
        name, started_at, step = json.loads(key)
    except (ValueError, TypeError):
        raise InvalidInput(f"a step's cached_from must be [pipeline, started_at, step], got "
                           f"{key[:80]!r}") from None
    found = batch.one("SELECT s.id FROM step_runs s JOIN pipeline_runs p ON "
                      "p.id = s.pipeline_run_id WHERE p.name = ? AND p.started_at = ? AND "
                      "s.step = ?", (name, started_at, step))
    return None if found is None else found[0]


def _audit(batch: Import, item: dict[str, Any]) -> None:
    """Re-append the project's row under the server's key, marked as imported."""
    row = item["row"]
    imported = batch.imported_hashes()
    there = row["hash"] in imported
    if not there:
        payload = json.loads(row["payload"])
        payload["imported"] = {"from": batch.project, "by": batch.user, "id": row["id"],
                               "at": row["at"], "actor": row["actor"], "hash": row["hash"]}
        audit.append(batch.conn, actor=row["actor"], action=row["action"],
                     subject=row["subject"], reason=row["reason"], payload=payload)
        imported.add(row["hash"])
    batch.count("audit", not there)


APPLY = {
    "environment": _by_digest("environments", "environment"),
    "dataset_version": _by_digest("dataset_versions", "dataset_version"),
    "artifact": _by_digest("artifacts", "artifact"),
    "run": _run,
    "metrics": _metrics,
    "model_version": _model_version,
    "model_profile": _model_profile,
    "alias": _alias,
    "evaluation": _by_key("evaluations", "evaluation",
                          ("name", "version", "dataset_digest", "created_at")),
    "gate_result": _by_key("gate_results", "gate_result",
                           ("name", "version", "gate", "evaluated_at")),
    "release_request": _by_key("release_requests", "release_request",
                               ("name", "version", "alias", "requester", "created_at")),
    "pipeline_run": _pipeline_run,
    "audit": _audit,
}
assert set(APPLY) == set(KINDS)


def apply_checked(store: Store, artifacts: ArtifactStore, user: str, project: str,
                  items: list[dict[str, Any]]) -> dict[str, Any]:
    """`apply_import`, with a statement the database refused (a constraint the checks
    above did not foresee) reported as a `Conflict`: the batch's data, not a fault."""
    try:
        return apply_import(store, artifacts, user, project, items)
    except sqlite3.IntegrityError as exc:
        text = (str(exc).strip() or type(exc).__name__).splitlines()[0][:300]
        raise Conflict(f"the server's database refused the batch ({text}); nothing of it "
                       "was written") from None
