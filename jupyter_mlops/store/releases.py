"""Aliases and release requests. Every change appends to the audit log in the
same transaction, so the log and the state never disagree."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import Conflict, NotFound
from . import audit
from .connection import write

_REQUEST_COLUMNS = ("id, name, version, alias, requester, reason, evidence, status, created_at,"
                    " decided_by, decided_at, decision_reason, override_reason")


@dataclass(frozen=True)
class ReleaseRequest:
    id: int
    name: str
    version: int
    alias: str
    requester: str
    reason: str
    evidence: Mapping[str, Any]
    status: str  # pending | approved | rejected
    created_at: float
    decided_by: str | None
    decided_at: float | None
    decision_reason: str | None
    override_reason: str | None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


class ReleaseRepository:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    # -- aliases ---------------------------------------------------------------------

    def aliases(self, name: str | None = None) -> dict[tuple[str, str], int]:
        """(model, alias) -> version."""
        sql = "SELECT name, alias, version FROM aliases"
        rows = self._conn.execute(sql + " WHERE name = ?" if name else sql,
                                  (name,) if name else ()).fetchall()
        return {(n, a): v for n, a, v in rows}

    def alias_version(self, name: str, alias: str) -> int | None:
        row = self._conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?",
                                 (name, alias)).fetchone()
        return None if row is None else row[0]

    def set_alias(self, name: str, alias: str, version: int, *, actor: str,
                  reason: str | None) -> None:
        """Point an alias at a version (the caller has checked who may)."""
        with write(self._conn) as conn:
            self._move(conn, name, alias, version, actor, reason, None)

    def _move(self, conn: sqlite3.Connection, name: str, alias: str, version: int, actor: str,
              reason: str | None, request_id: int | None) -> None:
        old = conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?",
                           (name, alias)).fetchone()
        conn.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?, ?)",
                     (name, alias, version, time.time()))
        audit.append(conn, actor=actor, action="alias moved", subject=f"{name}:{version}",
                     reason=reason, payload={"alias": alias, "from": old[0] if old else None,
                                             "to": version, "request": request_id})

    # -- release requests --------------------------------------------------------------

    def request(self, name: str, version: int, alias: str, *, requester: str, reason: str,
                evidence: Mapping[str, Any]) -> ReleaseRequest:
        with write(self._conn) as conn:
            request_id = conn.execute(
                "INSERT INTO release_requests (name, version, alias, requester, reason, "
                "evidence, status, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                (name, version, alias, requester, reason, json.dumps(evidence, default=str),
                 time.time())).lastrowid
            audit.append(conn, actor=requester, action="release requested",
                         subject=f"{name}:{version}", reason=reason,
                         payload={"request": request_id, "alias": alias,
                                  "gates_passed": evidence.get("gates_passed")})
        return self.get(int(request_id))

    def decide(self, request_id: int, *, decision: str, actor: str, reason: str,
               override_reason: str | None = None) -> ReleaseRequest:
        """Approve (and move the alias) or reject, atomically; the request must be pending."""
        with write(self._conn) as conn:
            current = self._get(conn, request_id)
            if current.status != "pending":
                raise Conflict(f"release request {request_id} is already {current.status} "
                               f"(by {current.decided_by})")
            status = "approved" if decision == "approve" else "rejected"
            conn.execute("UPDATE release_requests SET status = ?, decided_by = ?, "
                         "decided_at = ?, decision_reason = ?, override_reason = ? "
                         "WHERE id = ?",
                         (status, actor, time.time(), reason, override_reason, request_id))
            if override_reason:
                audit.append(conn, actor=actor, action="gates overridden",
                             subject=current.ref, reason=override_reason,
                             payload={"request": request_id})
            audit.append(conn, actor=actor, action=f"release {status}", subject=current.ref,
                         reason=reason, payload={"request": request_id,
                                                 "alias": current.alias})
            if status == "approved":
                self._move(conn, current.name, current.alias, current.version, actor, reason,
                           request_id)
        return self.get(request_id)

    def get(self, request_id: int) -> ReleaseRequest:
        return self._get(self._conn, request_id)

    def _get(self, conn: sqlite3.Connection, request_id: int) -> ReleaseRequest:
        row = conn.execute(f"SELECT {_REQUEST_COLUMNS} FROM release_requests WHERE id = ?",
                           (request_id,)).fetchone()
        if row is None:
            raise NotFound(f"no release request {request_id}")
        return _request(row)

    def list(self, status: str | None = None, name: str | None = None,
             limit: int = 100) -> list[ReleaseRequest]:
        sql = f"SELECT {_REQUEST_COLUMNS} FROM release_requests WHERE 1"
        args: list[object] = []
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        if name is not None:
            sql += " AND name = ?"
            args.append(name)
        rows = self._conn.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
        return [_request(row) for row in rows]


def _request(row: tuple) -> ReleaseRequest:
    values = list(row)
    values[6] = json.loads(values[6] or "{}")
    return ReleaseRequest(*values)
