"""`mlops push URL`: an embedded project's store copied into a team server.

Files first, records after: the blobs the server lacks are uploaded (asked with
blobs/missing, sent with PUT, hashed on both sides), then the project's rows go
to POST /api/v1/import in batches, in `store.exchange.ORDER`, each applied by
the server in one transaction. The server skips what it already has (runs by
uuid, model versions by name and version, audit rows by their original hash,
...), so pushing twice adds nothing and a push cut off midway (server down,
Ctrl-C) is finished by pushing again. See `teamserver/imports.py` for what
"already has" means per kind.

The project's audit chain is verified here, with the project's key, before
anything is sent: the server re-signs the rows with its own key, and must not
vouch for a chain nobody checked.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..artifacts import ArtifactStore
from ..errors import IntegrityError, InvalidInput, MlopsError, NotFound, PermissionDenied
from ..project import Project
from ..store import Store, codec
from ..store.exchange import (
    ALIAS,
    ARTIFACT,
    AUDIT_ROW,
    DATASET_VERSION,
    ENVIRONMENT,
    EVALUATION,
    GATE_RESULT,
    MAX_PROJECT_LABEL,
    MODEL_PROFILE,
    PIPELINE_RUN,
    RELEASE_REQUEST,
    RUN,
    STEP_RUN,
)
from ..team_protocol import MAX_JSON_BODY, MAX_RECORDS_PER_BATCH
from .client import Client

BATCH_ITEMS = 2_000
BATCH_BYTES = MAX_JSON_BODY // 4  # leaves room for JSON's own growth on the way
METRIC_CHUNK = 5_000  # metric points per item
DIGESTS_PER_QUESTION = 10_000
# What a summary calls each kind (plural).
NOUNS = {"environment": "environments", "dataset_version": "dataset versions",
         "artifact": "artifacts", "run": "runs", "metric": "metric points",
         "model_version": "model versions", "model_profile": "model profiles",
         "alias": "aliases", "evaluation": "evaluations", "gate_result": "gate results",
         "release_request": "release requests", "pipeline_run": "pipeline runs",
         "audit": "audit rows", "blob": "files"}


@dataclass
class PushReport:
    """What a push sent and what the server already had, by kind (`NOUNS`)."""

    added: Counter[str] = field(default_factory=Counter)
    present: Counter[str] = field(default_factory=Counter)
    run_ids: dict[str, int] = field(default_factory=dict)  # uuid -> the run's id there
    moved_runs: int = 0  # runs whose id differs on the server
    blob_bytes: int = 0
    dry_run: bool = False

    def summary(self) -> str:
        """One line: what went (or would go), and what the server already had."""
        if self.dry_run:
            rows = Counter({kind: n for kind, n in self.added.items() if kind != "blob"})
            files = self.added["blob"] + self.present["blob"]
            return (f"would send {_counts(rows) or 'nothing'} (the server skips the rows it "
                    f"already has); files the server lacks: {self.added['blob']} of {files} "
                    f"({_size(self.blob_bytes)})")
        line = f"pushed {_counts(self.added) or 'nothing'}"
        if self.added["blob"]:
            line += f" ({_size(self.blob_bytes)} of files)"
        if _counts(self.present):
            line += f"; already there: {_counts(self.present)}"
        if self.moved_runs:
            line += (f"; {self.moved_runs} runs got other ids on the server (theirs were "
                     "taken): their uuids are the same")
        return line


def _size(size: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {_noun(kind, n)}" for kind, n in counts.items() if n)


def _noun(kind: str, n: int) -> str:
    plural = NOUNS.get(kind, kind)
    if n != 1:
        return plural
    return plural[:-2] if plural.endswith("ses") else plural[:-1]


def push(project: Project, client: Client, *, dry_run: bool = False,
         progress: Callable[[PushReport], None] | None = None,
         batch_items: int = BATCH_ITEMS) -> PushReport:
    """Copy `project`'s store into the server `client` talks to; what went, what was there.

    Raises `PermissionDenied` (the token is not an admin's), `IntegrityError` (the
    project's audit chain is broken, or a blob in its store is missing or
    damaged), the server's `Conflict` (a model version or alias that differs
    there: that batch wrote nothing) and `ServerUnreachable` (push again later:
    what was sent stays, the rest follows).
    """
    client.version()
    who = client.whoami()
    if "admin" not in (who.get("permissions") or []):
        raise PermissionDenied(f"pushing a project takes an admin's token; {client.url} "
                               f"knows this one as {who.get('user')!r} (roles: "
                               f"{', '.join(who.get('roles') or []) or 'none'})")
    report = PushReport(dry_run=dry_run)
    with Store.for_project(project) as store:
        if store.needs_migration():
            raise InvalidInput(f"the store of {project.root} is at schema version "
                               f"{store.schema_version}: run `mlops init` in it to bring it "
                               "up to date, then push")
        chain = store.audit.verify()
        if not chain.ok:
            raise IntegrityError(f"the audit log of {project.root} (row {chain.first_broken}: "
                                 f"{chain.problem})", "an unbroken chain",
                                 "a broken one; nothing was pushed")
    db = sqlite3.connect(f"file:{project.db_path}?mode=ro", uri=True)
    try:
        _push_blobs(db, ArtifactStore(project.artifacts_dir), client, report, dry_run)
        if dry_run:
            for item in _items(db, {}):
                kind = item["kind"]
                report.added["metric" if kind == "metrics" else kind] += (
                    len(item["points"]) if kind == "metrics" else 1)
            return report
        _push_rows(db, client, _label(project), report, progress, batch_items)
    finally:
        db.close()
    return report


def _label(project: Project) -> str:
    """How the server's audit rows name where imported rows came from."""
    return f"{socket.gethostname()}:{project.root}"[:MAX_PROJECT_LABEL]


def _push_blobs(db: sqlite3.Connection, local: ArtifactStore, client: Client,
                report: PushReport, dry_run: bool) -> None:
    digests = [row[0] for row in db.execute(
        "SELECT digest FROM artifacts UNION SELECT digest FROM model_versions ORDER BY 1")]
    for start in range(0, len(digests), DIGESTS_PER_QUESTION):
        asked = digests[start:start + DIGESTS_PER_QUESTION]
        missing = client.missing(asked)
        report.present["blob"] += len(asked) - len(missing)
        for digest in sorted(missing):
            try:
                blob = local.open(digest)
            except NotFound:
                raise IntegrityError(f"file {digest} of the project's store", "present in "
                                     f"{local.root}", "missing (run `mlops verify`); "
                                     "nothing more was pushed") from None
            with blob:
                size = blob.seek(0, 2)
                blob.seek(0)
                if not dry_run:
                    client.put_blob(digest, blob, size)
            report.added["blob"] += 1
            report.blob_bytes += size


def _push_rows(db: sqlite3.Connection, client: Client, label: str, report: PushReport,
               progress: Callable[[PushReport], None] | None, batch_items: int) -> None:
    releases: dict[int, int] = {}  # the project's release request id -> the server's
    batch: list[Any] = []
    size = 0

    def send() -> None:
        nonlocal batch, size
        if not batch:
            return
        answer = client.call("POST", "/import", {"project": label, "items": batch})
        if not isinstance(answer, dict) or not isinstance(answer.get("added"), dict):
            raise MlopsError(f"team server {client.url} answered an import with "
                             f"{str(answer)[:80]}")
        report.added.update(answer["added"])
        report.present.update(answer.get("present") or {})
        ids = answer.get("ids") or {}
        for uuid, run_id in ids.get("run") or []:
            report.run_ids[uuid] = run_id
        for source, target in ids.get("release_request") or []:
            releases[source] = target
        batch, size = [], 0
        if progress is not None:
            progress(report)

    previous = None
    for item in _items(db, releases):
        if item["kind"] == "audit" and previous != "audit":
            send()  # the audit rows name release requests by the ids the server gave
        previous = item["kind"]
        encoded = codec.encode(item)
        length = len(json.dumps(encoded, allow_nan=False))
        if batch and (len(batch) >= min(batch_items, MAX_RECORDS_PER_BATCH)
                      or size + length > BATCH_BYTES):
            send()
        batch.append(encoded)
        size += length
    send()
    local_ids = dict(db.execute("SELECT uuid, id FROM runs"))
    report.moved_runs = sum(1 for uuid, run_id in report.run_ids.items()
                            if local_ids.get(uuid) != run_id)


def _rows(db: sqlite3.Connection, sql: str, columns: dict[str, str] | tuple[str, ...],
          params: tuple = ()) -> Iterator[dict[str, Any]]:
    for values in db.execute(sql, params):
        yield dict(zip(columns, values, strict=True))


def _select(columns: dict[str, str], table: str, order: str = "id") -> str:
    names = ", ".join(f'"{c}"' if c == "user" else c for c in columns)
    return f"SELECT {names} FROM {table} ORDER BY {order}"


def _items(db: sqlite3.Connection, releases: dict[int, int]) -> Iterator[dict[str, Any]]:
    """The project's rows as import items, in `exchange.ORDER`, read as they are sent.

    `releases` (filled while the push goes) maps the project's release request ids
    to the server's, for the audit rows that name them.
    """
    for columns, table, kind in ((ENVIRONMENT, "environments", "environment"),
                                 (DATASET_VERSION, "dataset_versions", "dataset_version"),
                                 (ARTIFACT, "artifacts", "artifact")):
        for row in _rows(db, _select(columns, table, "digest"), columns):
            yield {"kind": kind, "row": row}
    yield from _runs(db)
    model_columns = {c: "" for c in MODEL_VERSION_SELECT}
    for row in _rows(db, "SELECT " + ", ".join(MODEL_VERSION_SELECT.values()) +
                     " FROM model_versions m ORDER BY m.created_at, m.name, m.version",
                     model_columns):
        yield {"kind": "model_version", "row": row}
    for columns, table, kind, order in (
            (MODEL_PROFILE, "model_profiles", "model_profile", "name, version"),
            (ALIAS, "aliases", "alias", "name, alias"),
            (EVALUATION, "evaluations", "evaluation", "id"),
            (GATE_RESULT, "gate_results", "gate_result", "id"),
            (RELEASE_REQUEST, "release_requests", "release_request", "id")):
        for row in _rows(db, _select(columns, table, order), columns):
            yield {"kind": kind, "row": row}
    yield from _pipeline_runs(db)
    for row in _rows(db, _select(AUDIT_ROW, "audit_log"), AUDIT_ROW):
        yield {"kind": "audit", "row": _renumbered(row, releases)}


MODEL_VERSION_SELECT = {
    "name": "m.name", "version": "m.version",
    "run": "(SELECT uuid FROM runs r WHERE r.id = m.run_id)", "digest": "m.digest",
    "flavor": "m.flavor", "signature": "m.signature", "input_datasets": "m.input_datasets",
    "created_at": "m.created_at"}


def _runs(db: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    for row in _rows(db, _select(RUN, "runs"), RUN):
        run_id = row["id"]

        def rows(sql: str, run_id: int = run_id) -> list[list[Any]]:
            return [list(values) for values in db.execute(sql, (run_id,))]

        yield {"kind": "run", "row": row,
               "params": rows("SELECT key, value FROM params WHERE run_id = ? ORDER BY key"),
               "tags": rows("SELECT key, value FROM tags WHERE run_id = ? ORDER BY key"),
               "latest_metrics": rows("SELECT key, value, step, timestamp FROM "
                                      "latest_metrics WHERE run_id = ? ORDER BY key"),
               "datasets": rows("SELECT digest, role, source FROM run_datasets WHERE "
                                "run_id = ? ORDER BY digest, role"),
               "artifacts": rows("SELECT name, digest, kind FROM run_artifacts WHERE "
                                 "run_id = ? ORDER BY name")}
        points = db.execute("SELECT key, value, step, timestamp FROM metrics WHERE "
                            "run_id = ? ORDER BY rowid", (run_id,))
        offset = 0
        while chunk := points.fetchmany(METRIC_CHUNK):
            yield {"kind": "metrics", "row": {"run": row["uuid"], "offset": offset},
                   "points": [list(point) for point in chunk]}
            offset += len(chunk)


def _pipeline_runs(db: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    names = {step_id: json.dumps([name, started_at, step]) for step_id, name, started_at, step
             in db.execute("SELECT s.id, p.name, p.started_at, s.step FROM step_runs s JOIN "
                           "pipeline_runs p ON p.id = s.pipeline_run_id")}
    step_select = ", ".join(
        {"run": "(SELECT uuid FROM runs r WHERE r.id = s.run_id)"}.get(c, f"s.{c}")
        for c in STEP_RUN)
    for row in _rows(db, _select(PIPELINE_RUN, "pipeline_runs"), PIPELINE_RUN):
        steps = []
        for values in db.execute(f"SELECT {step_select} FROM step_runs s WHERE "
                                 "s.pipeline_run_id = ? ORDER BY s.id", (row["id"],)):
            step = dict(zip(STEP_RUN, values, strict=True))
            step["cached_from"] = names.get(step["cached_from"])
            steps.append(list(step.values()))
        yield {"kind": "pipeline_run", "row": row, "steps": steps}


def _renumbered(row: dict[str, Any], releases: dict[int, int]) -> dict[str, Any]:
    """An audit row whose payload names a release request by the id the server gave it
    (the same id, unless the server's was taken)."""
    payload = json.loads(row["payload"])
    request = payload.get("request") if isinstance(payload, dict) else None
    if isinstance(request, int) and releases.get(request, request) != request:
        payload["request"] = releases[request]
        row = {**row, "payload": json.dumps(payload, sort_keys=True, separators=(",", ":"))}
    return row
