"""The tamper-evident audit log: append-only rows chained by hash.

Each row's hash is BLAKE3 over its canonical JSON (id, time, actor, action,
subject, reason, payload) and the previous row's hash. Triggers abort UPDATE
and DELETE; `verify()` recomputes the chain and finds the first broken row,
which catches edits made with the triggers dropped, deleted rows and
re-ordered ones. Appends happen inside the caller's write transaction
(BEGIN IMMEDIATE), so concurrent writers keep the chain linear.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import blake3

GENESIS = "blake3:" + "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    subject: str
    reason: str | None
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ChainReport:
    rows: int
    first_broken: int | None  # id of the first row whose hash or link is wrong
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.first_broken is None


def _row_hash(row_id: int, at: float, actor: str, action: str, subject: str,
              reason: str | None, payload: str, prev_hash: str) -> str:
    canonical = json.dumps([row_id, repr(at), actor, action, subject, reason, payload,
                            prev_hash], separators=(",", ":"), ensure_ascii=False)
    return "blake3:" + blake3.blake3(canonical.encode("utf-8")).hexdigest()


def append(conn: sqlite3.Connection, *, actor: str, action: str, subject: str,
           reason: str | None = None, payload: Mapping[str, Any] | None = None) -> int:
    """Append one row. Call inside a write transaction (`store.connection.write`)."""
    last = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    row_id = 1 if last is None else last[0] + 1
    prev_hash = GENESIS if last is None else last[1]
    at = time.time()
    body = json.dumps(dict(payload or {}), sort_keys=True, separators=(",", ":"), default=str)
    digest = _row_hash(row_id, at, actor, action, subject, reason, body, prev_hash)
    conn.execute("INSERT INTO audit_log (id, at, actor, action, subject, reason, payload,"
                 " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (row_id, at, actor, action, subject, reason, body, prev_hash, digest))
    return row_id


class AuditRepository:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def entries(self, limit: int | None = None, subject: str | None = None) -> list[AuditEntry]:
        sql = ("SELECT id, at, actor, action, subject, reason, payload, prev_hash, hash "
               "FROM audit_log")
        args: list[object] = []
        if subject is not None:
            sql += " WHERE subject = ? OR subject LIKE ?"
            args += [subject, subject + ":%"]
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [AuditEntry(*row[:6], json.loads(row[6]), row[7], row[8])
                for row in self._conn.execute(sql, args)]

    def verify(self) -> ChainReport:
        prev_hash, expected_id, count = GENESIS, 1, 0
        for row in self._conn.execute("SELECT id, at, actor, action, subject, reason, payload,"
                                      " prev_hash, hash FROM audit_log ORDER BY id"):
            row_id, at, actor, action, subject, reason, payload, stored_prev, stored = row
            count += 1
            if row_id != expected_id:
                return ChainReport(count, row_id, f"row {expected_id} is missing")
            if stored_prev != prev_hash:
                return ChainReport(count, row_id, "its link to the previous row is broken")
            if _row_hash(row_id, at, actor, action, subject, reason, payload,
                         stored_prev) != stored:
                return ChainReport(count, row_id, "its content does not match its hash")
            prev_hash, expected_id = stored, expected_id + 1
        return ChainReport(count, None, None)
