"""Aliases and release requests. Every change appends to the audit log in the
same transaction, so the log and the state never disagree."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import Conflict, NotFound
from . import audit
from .connection import write
from .ids import storable

_REQUEST_COLUMNS = ("id, name, version, alias, requester, reason, evidence, status, created_at,"
                    " decided_by, decided_at, decision_reason, override_reason")


class StaleEvidence(Conflict):
    """What a request's evidence was computed from changed before the write that used it."""


class AliasMoved(StaleEvidence):
    """An alias moved between reading its holder and the write that relied on it."""

    def __init__(self, message: str, moved: Mapping[str, tuple[int | None, int | None]]) -> None:
        self.moved = dict(moved)  # alias -> (expected version, actual version)
        super().__init__(message)


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
                evidence: Mapping[str, Any],
                holders: Mapping[str, int | None] | None = None,
                precondition: Callable[[], None] | None = None) -> ReleaseRequest:
        """Record a pending request for `alias` -> `name:version` with its evidence.

        Inside the write transaction: refuses a duplicate pending request or an
        alias that already points there (`Conflict`), checks that each alias in
        `holders` still points at the version the evidence was computed against
        (`AliasMoved` otherwise), and runs `precondition` (raise to abort).
        """
        with write(self._conn) as conn:
            self._refuse_duplicate(conn, name, version, alias)
            if holders is not None:
                _check_holders(conn, name, holders, "while the evidence was computed")
            if precondition is not None:
                precondition()
            evidence_text = json.dumps(evidence, default=str)
            request_id = conn.execute(
                "INSERT INTO release_requests (name, version, alias, requester, reason, "
                "evidence, status, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                (name, version, alias, requester, reason, evidence_text,
                 time.time())).lastrowid
            data = evidence.get("data") or {}
            # The signed row carries what approval rests on: the requester (its actor)
            # and a digest of the evidence exactly as stored (`_check_against_audit`).
            audit.append(conn, actor=requester, action="release requested",
                         subject=f"{name}:{version}", reason=reason,
                         payload={"request": request_id, "alias": alias,
                                  "gates_passed": evidence.get("gates_passed"),
                                  "data": data.get("digest"), "holders": holders,
                                  "evidence": audit.text_digest(evidence_text)})
        return self.get(int(request_id))

    def refuse_duplicate(self, name: str, version: int, alias: str) -> None:
        """`Conflict` if `alias` already points at the version or a request for it is pending.

        `request()` checks again inside its transaction; this lets a caller fail
        before computing evidence.
        """
        self._refuse_duplicate(self._conn, name, version, alias)

    def _refuse_duplicate(self, conn: sqlite3.Connection, name: str, version: int,
                          alias: str) -> None:
        holder = conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?",
                              (name, alias)).fetchone()
        if holder is not None and holder[0] == version:
            raise Conflict(f"{alias} already points at {name}:{version}")
        pending = conn.execute("SELECT id FROM release_requests WHERE name = ? AND "
                               "version = ? AND alias = ? AND status = 'pending'",
                               (name, version, alias)).fetchone()
        if pending is not None:
            raise Conflict(f"release request {pending[0]} for {name}:{version} -> {alias} is "
                           "already pending")

    def decide(self, request_id: int, *, decision: str, actor: str, reason: str,
               override_reason: str | None = None,
               holders: Mapping[str, int | None] | None = None,
               precondition: Callable[[ReleaseRequest], None] | None = None,
               data_change: Mapping[str, Any] | None = None) -> ReleaseRequest:
        """Approve (and move the alias) or reject, atomically; the request must be pending.

        For an approval, inside the write transaction: with `holders` (alias ->
        version the evidence was computed against) it is refused with
        `AliasMoved` if any of them moved since; `precondition` is called with the
        request as stored (raise to abort). `data_change` is the reviewer's
        acknowledgement that the evaluation data differs from an earlier
        release's, appended to the audit log as its own row.
        """
        with write(self._conn) as conn:
            current = self._get(conn, request_id)
            if current.status != "pending":
                raise Conflict(f"release request {request_id} is already {current.status} "
                               f"(by {current.decided_by})")
            if decision == "approve":
                _check_against_audit(conn, current)
            if holders is not None and decision == "approve":
                _check_holders(conn, current.name, holders,
                               f"since the evidence of release request {request_id} was "
                               f"computed: the evidence is stale; request again (`mlops "
                               f"release request {current.ref} --to {current.alias} "
                               "--reason ...`)")
            if precondition is not None and decision == "approve":
                precondition(current)
            status = "approved" if decision == "approve" else "rejected"
            conn.execute("UPDATE release_requests SET status = ?, decided_by = ?, "
                         "decided_at = ?, decision_reason = ?, override_reason = ? "
                         "WHERE id = ?",
                         (status, actor, time.time(), reason, override_reason, request_id))
            if override_reason:
                audit.append(conn, actor=actor, action="gates overridden",
                             subject=current.ref, reason=override_reason,
                             payload={"request": request_id})
            if data_change and status == "approved":
                audit.append(conn, actor=actor, action="evaluation data change accepted",
                             subject=current.ref, reason=reason,
                             payload={"request": request_id, **data_change})
            data = current.evidence.get("data")
            gate_set = current.evidence.get("gate_set")
            audit.append(conn, actor=actor, action=f"release {status}", subject=current.ref,
                         reason=reason, payload={
                             "request": request_id, "alias": current.alias,
                             "data": data.get("digest") if isinstance(data, dict) else None,
                             "gates": (gate_set.get("digest") if isinstance(gate_set, dict)
                                       else None)})
            if status == "approved":
                self._move(conn, current.name, current.alias, current.version, actor, reason,
                           request_id)
        return self.get(request_id)

    def get(self, request_id: int) -> ReleaseRequest:
        return self._get(self._conn, request_id)

    def _get(self, conn: sqlite3.Connection, request_id: int) -> ReleaseRequest:
        row = (conn.execute(f"SELECT {_REQUEST_COLUMNS} FROM release_requests WHERE id = ?",
                            (request_id,)).fetchone() if storable(request_id) else None)
        if row is None:
            raise NotFound(f"no release request {request_id}")
        return _request(row)

    def list(self, status: str | None = None, name: str | None = None,
             limit: int = 100) -> list[ReleaseRequest]:
        sql = f"SELECT {_REQUEST_COLUMNS} FROM release_requests WHERE 1 = 1"
        args: list[object] = []
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        if name is not None:
            sql += " AND name = ?"
            args.append(name)
        rows = self._conn.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
        return [_request(row) for row in rows]


    def latest_approved(self, *, name: str | None = None, alias: str | None = None,
                        decided_before: float | None = None,
                        exclude: int | None = None) -> ReleaseRequest | None:
        """The most recently approved request whose evidence names its evaluation data.

        Optionally only `name`'s, only for `alias`, only approved before
        `decided_before`, and never request `exclude`: what a request's evaluation
        data is compared with.
        """
        # Filtered on the data in Python: evidence may hold NaN metrics, which Python's
        # json writes and SQLite's json_extract refuses.
        sql = f"SELECT {_REQUEST_COLUMNS} FROM release_requests WHERE status = 'approved'"
        args: list[object] = []
        for column, value in (("name", name), ("alias", alias)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        if decided_before is not None:
            sql += " AND decided_at < ?"
            args.append(decided_before)
        if exclude is not None and storable(exclude):
            sql += " AND id != ?"
            args.append(exclude)
        for row in self._conn.execute(sql + " ORDER BY decided_at DESC, id DESC", args):
            request = _request(row)
            data = request.evidence.get("data")
            if isinstance(data, dict) and data.get("digest"):
                return request
        return None


def _check_holders(conn: sqlite3.Connection, name: str, holders: Mapping[str, int | None],
                   when: str) -> None:
    """Raise `AliasMoved` unless every alias still points at the expected version."""
    moved = {}
    for alias, expected in holders.items():
        row = conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?",
                           (name, alias)).fetchone()
        actual = None if row is None else row[0]
        if actual != expected:
            moved[alias] = (expected, actual)

    def ref(version: int | None) -> str:
        return "nothing" if version is None else f"{name}:{version}"

    if moved:
        changes = "; ".join(f"{alias} pointed at {ref(old)} and now points at {ref(new)}"
                            for alias, (old, new) in sorted(moved.items()))
        raise AliasMoved(f"{changes} {when}", moved)


def _request(row: tuple) -> ReleaseRequest:
    values = list(row)
    values[6] = json.loads(values[6] or "{}")
    return ReleaseRequest(*values)


def _check_against_audit(conn: sqlite3.Connection, request: ReleaseRequest) -> None:
    """Refuse to approve a request whose row differs from the audit row signed when it
    was made: a requester, alias or evidence edited in the database (or a request
    inserted there, with no signed row) is caught here, whoever holds write access to
    the database but not the audit key."""
    from ..errors import IntegrityError

    entry = audit.checked_entry(conn, "release requested", request.ref, request.id)
    if entry is None:
        raise IntegrityError(f"release request {request.id}", "a signed 'release requested' "
                             "row in the audit log", "none (the request was written into "
                             "the database directly, not by `mlops release request`)")
    signed = entry.payload
    stored_text = conn.execute("SELECT evidence FROM release_requests WHERE id = ?",
                               (request.id,)).fetchone()[0]
    data = request.evidence.get("data") if isinstance(request.evidence, dict) else None
    checks = [("requester", entry.actor, request.requester),
              ("alias", signed.get("alias"), request.alias),
              ("gates verdict", signed.get("gates_passed"),
               request.evidence.get("gates_passed")),
              ("evaluation data", signed.get("data"),
               data.get("digest") if isinstance(data, dict) else None)]
    if "evidence" in signed:  # requests made before evidence digests were signed lack it
        checks.append(("evidence", signed["evidence"], audit.text_digest(stored_text)))
    for what, expected, found in checks:
        if expected != found:
            raise IntegrityError(f"release request {request.id}'s {what} (audit row "
                                 f"{entry.id} signed it)", repr(expected), repr(found))
