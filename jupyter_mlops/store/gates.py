"""Evaluations (a model version's metrics on a dataset digest) and gate results."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass

from . import audit
from .connection import write


@dataclass(frozen=True)
class Evaluation:
    id: int
    name: str
    version: int
    dataset_digest: str
    metrics: Mapping[str, float]
    created_at: float


@dataclass(frozen=True)
class GateResult:
    name: str
    version: int
    gate: str
    against: str | None  # the alias compared with, if any
    against_version: int | None
    passed: bool
    value: float | None
    threshold: float | None
    dataset_digest: str | None
    reason: str
    evaluated_at: float


class GateRepository:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add_evaluation(self, name: str, version: int, dataset_digest: str,
                       metrics: Mapping[str, float]) -> Evaluation:
        created = time.time()
        with write(self._conn) as conn:
            row_id = conn.execute(
                "INSERT INTO evaluations (name, version, dataset_digest, metrics, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, version, dataset_digest, json.dumps(dict(metrics)), created)).lastrowid
        return Evaluation(int(row_id), name, version, dataset_digest, dict(metrics), created)

    def evaluations(self, name: str, version: int) -> list[Evaluation]:
        """Newest first."""
        rows = self._conn.execute(
            "SELECT id, name, version, dataset_digest, metrics, created_at FROM evaluations "
            "WHERE name = ? AND version = ? ORDER BY id DESC", (name, version)).fetchall()
        return [Evaluation(*row[:4], json.loads(row[4]), row[5]) for row in rows]

    def record(self, results: list[GateResult], actor: str) -> None:
        """Store gate results and append one audit row for the batch."""
        if not results:
            return
        first = results[0]
        with write(self._conn) as conn:
            conn.executemany(
                "INSERT INTO gate_results (name, version, gate, against, against_version, "
                "passed, value, threshold, dataset_digest, reason, evaluated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.name, r.version, r.gate, r.against, r.against_version, int(r.passed),
                  r.value, r.threshold, r.dataset_digest, r.reason, r.evaluated_at)
                 for r in results])
            audit.append(conn, actor=actor, action="gates evaluated",
                         subject=f"{first.name}:{first.version}",
                         payload={"passed": all(r.passed for r in results),
                                  "gates": {r.gate: r.passed for r in results}})

    def recent(self, name: str, version: int, limit: int = 50) -> list[GateResult]:
        """This version's gate results, newest first."""
        rows = self._conn.execute(
            "SELECT name, version, gate, against, against_version, passed, value, threshold,"
            " dataset_digest, reason, evaluated_at FROM gate_results WHERE name = ? AND "
            "version = ? ORDER BY id DESC LIMIT ?", (name, version, limit)).fetchall()
        return [GateResult(*row[:5], bool(row[5]), *row[6:]) for row in rows]

    def latest(self, name: str, version: int) -> list[GateResult]:
        """The most recent result of each gate for this version."""
        rows = self._conn.execute(
            "SELECT name, version, gate, against, against_version, passed, value, threshold,"
            " dataset_digest, reason, evaluated_at FROM gate_results g WHERE name = ? AND "
            "version = ? AND id = (SELECT max(id) FROM gate_results WHERE name = g.name AND "
            "version = g.version AND gate = g.gate) ORDER BY gate", (name, version)).fetchall()
        return [GateResult(*row[:5], bool(row[5]), *row[6:]) for row in rows]
