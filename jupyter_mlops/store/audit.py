"""The tamper-evident audit log: append-only rows chained by a keyed MAC.

Each row's hash is `hmac-sha256:<hex>`, an HMAC-SHA256 under the project's
audit key over the row's canonical JSON (id, time, actor, action, subject,
reason, payload) and the previous row's hash. The key lives in a file outside
the database (`.mlops/audit.key`, mode 0600, written by `mlops init`, or the
path in `[audit] key_file`), so whoever can write the database but cannot read
the key can neither edit a row nor rewrite the chain after it: `verify()`
recomputes every MAC and finds the first broken row. Cutting rows off the end
leaves a shorter chain that is still consistent; `verify(expected_head=...)`
with a head kept elsewhere (`mlops audit head`) catches that.

Triggers abort UPDATE and DELETE. Appends happen inside the caller's write
transaction (BEGIN IMMEDIATE), so concurrent writers keep the chain linear.

Stores written before the key existed hold *legacy* rows hashed with plain
BLAKE3, which anyone can recompute. They are accepted only as a prefix sealed
by a keyed row after them (whose MAC covers the last legacy hash): `seal()`
appends that row once, after an upgrade. A chain that ends in unkeyed rows, or
has an unkeyed row after a keyed one, is reported broken, and appends refuse
to build on an unsealed tail: a chain rewritten with plain hashes by someone
without the key must not be made valid by the next honest write.

The key travels with the connection as an SQL function registered by
`attach_key()`, so every repository sharing the connection (models, gates,
releases) chains with the same key without passing it around.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from ..errors import Conflict, InvalidInput, MlopsError, NotFound, PermissionDenied

GENESIS = "blake3:" + "0" * 64
KEYED = "hmac-sha256"
LEGACY = "blake3"
KEY_HEX_CHARS = 64  # 32 random bytes, as `mlops init` writes them
_MAC_FUNCTION = "mlops_audit_mac"
_ERROR_MARK = "!error!"
_KEY_ERRORS: dict[str, type[MlopsError]] = {
    cls.__name__: cls for cls in (NotFound, PermissionDenied, InvalidInput)}
_COLUMNS = "id, at, actor, action, subject, reason, payload, prev_hash, hash"


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
    legacy_rows: int = 0  # unkeyed rows written before the audit key (sealed if ok)
    head: tuple[int, str] | None = None  # (id, hash) of the last row

    @property
    def ok(self) -> bool:
        return self.first_broken is None


class AuditKey:
    """The audit chain's HMAC key, read from its file on first use (never at open).

    The file must hold at least 64 hex characters and be private to its owner
    (group-readable too when `group_readable`, for a store shared through a
    Unix group). Raises `NotFound`, `PermissionDenied` or `InvalidInput` with
    what to do, on first use.
    """

    def __init__(self, path: str | os.PathLike[str], *, group_readable: bool = False) -> None:
        self.path = Path(path)
        self.group_readable = group_readable
        self._key: bytes | None = None

    def mac(self, message: bytes) -> str:
        """`hmac-sha256:<hex>` of `message` under the key."""
        import hashlib  # OpenSSL loads in ms: only for commands that touch the audit log
        import hmac

        return f"{KEYED}:" + hmac.new(self.load(), message, hashlib.sha256).hexdigest()

    def load(self) -> bytes:
        if self._key is None:
            self._key = read_key(self.path, group_readable=self.group_readable)
        return self._key


def read_key(path: Path, *, group_readable: bool = False) -> bytes:
    """The key bytes in `path`, refusing a missing, public or malformed key file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise NotFound(f"no audit key at {path}: `mlops init` writes one (mode 0600); if "
                       "your admin keeps it elsewhere, set key_file in [audit] of "
                       ".mlops/config.toml") from None
    except OSError as exc:
        raise PermissionDenied(f"cannot read the audit key {path}: {exc.strerror}; registry "
                               "changes and `mlops audit verify` need to read it (ask its "
                               "owner, or name another file in [audit] key_file)") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InvalidInput(f"audit key {path} is not a regular file")
        forbidden = 0o007 if group_readable else 0o077
        if mode & forbidden:
            raise PermissionDenied(
                f"audit key {path} is readable or writable by "
                f"{'others' if group_readable else 'group or others'} (mode "
                f"{stat.S_IMODE(mode):04o}): whoever reads it can forge the audit log; "
                f"run `chmod {'640' if group_readable else '600'} {path}`")
        text = os.read(fd, 4096).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) * 2 < KEY_HEX_CHARS:
        raise InvalidInput(f"audit key {path} does not hold a key of {KEY_HEX_CHARS} hex "
                           "characters; move it away and run `mlops init` to write a new one "
                           "(rows keyed with a lost key no longer verify)")
    return key


def attach_key(conn: sqlite3.Connection, key: AuditKey) -> None:
    """Bind `key` to `conn`: `append()` on this connection chains with it.

    A Python error cannot cross SQLite's function boundary, so a key problem
    comes back as a marked string that `_mac()` turns into the original error.
    """
    def sql_mac(message: str) -> str:
        try:
            return key.mac(message.encode("utf-8"))
        except MlopsError as exc:
            return f"{_ERROR_MARK}{type(exc).__name__}:{exc}"

    conn.create_function(_MAC_FUNCTION, 1, sql_mac, deterministic=True)


def _mac(conn: sqlite3.Connection, message: str) -> str:
    try:
        result = conn.execute(f"SELECT {_MAC_FUNCTION}(?)", (message,)).fetchone()[0]
    except sqlite3.OperationalError:
        raise MlopsError("this database connection has no audit key: open the store with "
                         "`Store(path, audit_key_path=...)` or `Store.for_project(project)`"
                         ) from None
    if result.startswith(_ERROR_MARK):
        kind, _, text = result[len(_ERROR_MARK):].partition(":")
        raise _KEY_ERRORS.get(kind, MlopsError)(text)
    return result


def _canonical(row_id: int, at: float, actor: str, action: str, subject: str,
               reason: str | None, payload: str, prev_hash: str) -> str:
    return json.dumps([row_id, repr(at), actor, action, subject, reason, payload, prev_hash],
                      separators=(",", ":"), ensure_ascii=False)


def _keyed_message(canonical: str) -> str:
    """What the MAC covers: the canonical row, bound to the algorithm's name."""
    return f"{KEYED}\n{canonical}"


def _legacy_hash(canonical: str) -> str:
    return f"{LEGACY}:" + blake3.blake3(canonical.encode("utf-8")).hexdigest()


def append(conn: sqlite3.Connection, *, actor: str, action: str, subject: str,
           reason: str | None = None, payload: Mapping[str, Any] | None = None) -> int:
    """Append one keyed row. Call inside a write transaction (`store.connection.write`).

    Raises `Conflict` if the chain ends in unsealed legacy rows (see `seal()`),
    and the key's errors if the key file is missing or unsafe.
    """
    last = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    if last is not None and not last[1].startswith(f"{KEYED}:"):
        raise Conflict(f"the audit log ends in row {last[0]}, which carries no MAC (written "
                       "before the audit key existed, or rewritten without it); after "
                       "checking the log (`mlops audit ls`), seal it once: `mlops audit seal`")
    return _insert(conn, last, actor, action, subject, reason, payload)


def _insert(conn: sqlite3.Connection, last: tuple[int, str] | None, actor: str, action: str,
            subject: str, reason: str | None, payload: Mapping[str, Any] | None) -> int:
    row_id = 1 if last is None else last[0] + 1
    prev_hash = GENESIS if last is None else last[1]
    at = time.time()
    body = json.dumps(dict(payload or {}), sort_keys=True, separators=(",", ":"), default=str)
    canonical = _canonical(row_id, at, actor, action, subject, reason, body, prev_hash)
    digest = _mac(conn, _keyed_message(canonical))
    conn.execute(f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (row_id, at, actor, action, subject, reason, body, prev_hash, digest))
    return row_id


class AuditRepository:
    def __init__(self, conn: sqlite3.Connection, key: AuditKey) -> None:
        self._conn = conn
        self._key = key

    def entries(self, limit: int | None = None, subject: str | None = None) -> list[AuditEntry]:
        sql = f"SELECT {_COLUMNS} FROM audit_log"
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

    def head(self) -> tuple[int, str] | None:
        """(id, hash) of the last row, or None for an empty log."""
        row = self._conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1"
                                 ).fetchone()
        return None if row is None else (row[0], row[1])

    def seal(self, actor: str) -> int | None:
        """Seal unkeyed legacy rows under the key with one keyed row; None if nothing to seal.

        Run once after upgrading a store written before the audit key existed:
        the new row's MAC covers the last legacy hash, so the legacy rows can no
        longer be rewritten unseen.
        """
        from .connection import write

        with write(self._conn) as conn:
            last = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1"
                                ).fetchone()
            if last is None or last[1].startswith(f"{KEYED}:"):
                return None
            walk = _ChainWalk(self._key)
            for row in conn.execute(f"SELECT {_COLUMNS} FROM audit_log ORDER BY id"):
                if not walk.step(row):
                    broken_id, problem = walk.broken or (row[0], "")
                    raise Conflict(f"the audit chain is broken at row {broken_id}: {problem}; "
                                   "a broken chain cannot be sealed")
            return _insert(conn, last, actor, "audit chain sealed", "audit", None,
                           {"legacy_rows": last[0], "legacy_head": last[1]})

    def verify(self, expected_head: tuple[int, str] | None = None) -> ChainReport:
        """Recompute every row's hash and link; compare with a head kept elsewhere if given.

        Raises the key's errors (missing, unsafe, malformed key file) when a
        keyed row must be checked.
        """
        walk = _ChainWalk(self._key)
        for row in self._conn.execute(f"SELECT {_COLUMNS} FROM audit_log ORDER BY id"):
            if not walk.step(row):
                break
        report = walk.report()
        if report.ok and expected_head is not None:
            return _check_head(report, expected_head, self._conn)
        return report


class _ChainWalk:
    """The state of a walk along the chain, one row at a time."""

    def __init__(self, key: AuditKey) -> None:
        self.key = key
        self.prev_hash, self.expected_id, self.count = GENESIS, 1, 0
        self.legacy = 0
        self.keyed = False
        self.broken: tuple[int, str] | None = None
        self.last: tuple[int, str] | None = None

    def step(self, row: tuple) -> bool:
        """Check one row; False (and `broken` set) at the first problem."""
        row_id, at, actor, action, subject, reason, payload, stored_prev, stored = row
        self.count += 1
        canonical = _canonical(row_id, at, actor, action, subject, reason, payload,
                               stored_prev)
        problem = None
        if row_id != self.expected_id:
            problem = f"row {self.expected_id} is missing"
        elif stored_prev != self.prev_hash:
            problem = "its link to the previous row is broken"
        elif stored.startswith(f"{KEYED}:"):
            if not _same_mac(self.key.mac(_keyed_message(canonical).encode("utf-8")),
                                       stored):
                problem = ("its content does not match its MAC (the row was edited, or the "
                           "key is not the one that wrote it)")
            self.keyed = True
        elif stored.startswith(f"{LEGACY}:") and not self.keyed:
            if _legacy_hash(canonical) != stored:
                problem = "its content does not match its hash"
            self.legacy += 1
        elif stored.startswith(f"{LEGACY}:"):
            problem = "it carries no MAC but follows keyed rows (rewritten without the key?)"
        else:
            problem = f"unknown hash algorithm in {stored[:20]!r}"
        if problem is not None:
            self.broken = (row_id, problem)
            return False
        self.prev_hash, self.expected_id = stored, self.expected_id + 1
        self.last = (row_id, stored)
        return True

    def report(self) -> ChainReport:
        if self.broken is not None:
            return ChainReport(self.count, *self.broken, legacy_rows=self.legacy, head=self.last)
        if self.legacy and not self.keyed:
            return ChainReport(
                self.count, 1,
                f"rows 1-{self.legacy} carry no MAC, only a plain BLAKE3 hash anyone can "
                "recompute, and no keyed row seals them; if this store was written before "
                "the audit key existed, check the rows and run `mlops audit seal` once",
                legacy_rows=self.legacy, head=self.last)
        return ChainReport(self.count, None, None, legacy_rows=self.legacy, head=self.last)


def _check_head(report: ChainReport, expected: tuple[int, str],
                conn: sqlite3.Connection) -> ChainReport:
    """Compare the chain with a head (id, MAC) kept outside the database."""
    head_id, head_mac = expected
    if report.rows < head_id:
        return ChainReport(report.rows, report.rows + 1,
                           f"the log ends at row {report.rows} but the head you kept is row "
                           f"{head_id}: rows were cut off the end",
                           legacy_rows=report.legacy_rows, head=report.head)
    row = conn.execute("SELECT hash FROM audit_log WHERE id = ?", (head_id,)).fetchone()
    if row is None or not _same_mac(row[0], head_mac):
        return ChainReport(report.rows, head_id,
                           f"row {head_id}'s MAC differs from the head you kept: the log was "
                           "rewritten from there on",
                           legacy_rows=report.legacy_rows, head=report.head)
    return report


def parse_head(text: str) -> tuple[int, str]:
    """`ID:MAC` (as printed by `mlops audit head`) -> (id, MAC)."""
    row_id, sep, mac = text.strip().partition(":")
    if not sep or not row_id.isdigit() or int(row_id) < 1 or ":" not in mac:
        raise InvalidInput(f"head {text[:120]!r} should look like "
                           f"`42:{KEYED}:<hex>`, as printed by `mlops audit head`")
    return int(row_id), mac


def _same_mac(a: str, b: str) -> bool:
    """Constant-time comparison (hmac is imported here, not at import time)."""
    import hmac

    return hmac.compare_digest(a, b)
