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

Only rows that predate the key may be sealed, so the key file is also the
record of where the legacy log ended: `create_key()` writes, below the key,
`legacy-head: ID:HASH` (the last row when the key was made) or
`legacy-head: none` (an empty log). `seal()` seals exactly that prefix and
refuses unkeyed rows written after it, or a prefix rewritten since: whoever
writes the database without the key can neither have forged rows sealed nor
(the log being keyed) get a new key written by `mlops init`. A key file made by
hand records nothing; `seal()` then seals a log that holds no keyed row at all.

Appends check the last row (its MAC and its link to the row before) before
chaining onto it, so a forged last row is found by the next write instead of
being vouched for by it; only that row, to keep an append one MAC.

The key travels with the connection (`attach_key()`), so every repository
sharing the connection (models, gates, releases) chains with the same key
without passing it around. Appends happen inside the write transaction on
both databases: SQLite's `BEGIN IMMEDIATE` and PostgreSQL's advisory write
lock keep one writer at a time, so the chain stays linear across processes.
"""

from __future__ import annotations

import errno
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
from .connection import StoreConnection, write

GENESIS = "blake3:" + "0" * 64
KEYED = "hmac-sha256"
LEGACY = "blake3"
KEY_HEX_CHARS = 64  # 32 random bytes, as `mlops init` writes them
KEY_FILE_READ_LIMIT = 4096
LEGACY_HEAD_FIELD = "legacy-head:"  # the key file's record of the log when it was made
_MAC_FUNCTION = "mlops_audit_mac"
_ERROR_MARK = "!error!"
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


class KeyMissing(NotFound):
    """The audit key file does not exist.

    With `keyed_log` the log already holds rows keyed with it: the message says
    to restore the file, since a new key could neither verify nor extend them.
    """

    def __init__(self, path: Path, *, keyed_log: bool = False) -> None:
        self.path = path
        self.keyed_log = keyed_log
        if keyed_log:
            message = (f"the audit key {path} is missing, and the audit log holds rows keyed "
                       "with it: the log can't be verified or extended until that file is "
                       "restored (from a backup, or wherever your admin keeps it; "
                       "[audit] key_file in .mlops/config.toml says where it is looked for)")
        else:
            message = (f"no audit key at {path}: `mlops init` writes one (mode 0600); if your "
                       "admin keeps it elsewhere, set key_file in [audit] of "
                       ".mlops/config.toml")
        super().__init__(message)

    def in_keyed_log(self) -> KeyMissing:
        return KeyMissing(self.path, keyed_log=True)


_KEY_ERRORS: dict[str, type[MlopsError]] = {
    cls.__name__: cls for cls in (NotFound, PermissionDenied, InvalidInput)}


class _Unrecorded:
    """The legacy head of a key file that records none (made by hand)."""

    def __repr__(self) -> str:
        return "UNRECORDED"


UNRECORDED = _Unrecorded()


@dataclass(frozen=True)
class KeyFile:
    """What an audit key file holds: the key, and where the unkeyed log ended when
    `create_key()` wrote it: (id, hash) of its last row, None for an empty log,
    `UNRECORDED` for a key file made by hand."""

    key: bytes
    legacy_head: tuple[int, str] | None | _Unrecorded = UNRECORDED


class AuditKey:
    """The audit chain's HMAC key, read from its file on first use (never at open).

    The file must hold at least 64 hex characters and be private to its owner
    (group-readable too when `group_readable`, for a store shared through a
    Unix group). Raises `KeyMissing`, `PermissionDenied` or `InvalidInput` with
    what to do, on first use.
    """

    def __init__(self, path: str | os.PathLike[str], *, group_readable: bool = False) -> None:
        self.path = Path(path)
        self.group_readable = group_readable
        self._file: KeyFile | None = None

    def mac(self, message: bytes) -> str:
        """`hmac-sha256:<hex>` of `message` under the key."""
        import hashlib  # OpenSSL loads in ms: only for commands that touch the audit log
        import hmac

        return f"{KEYED}:" + hmac.new(self.load(), message, hashlib.sha256).hexdigest()

    def load(self) -> bytes:
        return self.read().key

    def read(self) -> KeyFile:
        if self._file is None:
            self._file = read_key(self.path, group_readable=self.group_readable)
        return self._file


def read_key(path: Path, *, group_readable: bool = False) -> KeyFile:
    """The key file at `path`, refusing a missing, public or malformed one.

    Opened with `O_NOFOLLOW | O_NONBLOCK` and checked with `fstat`: a link, a
    FIFO (which would block the open), a device or a folder is refused.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyMissing(path) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidInput(f"audit key {path} is a symbolic link: name the file itself in "
                               "[audit] key_file of .mlops/config.toml") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise PermissionDenied(f"cannot read the audit key {path}: {exc.strerror}; "
                                   "registry changes and `mlops audit verify` need to read "
                                   "it (ask its owner, or name another file in [audit] "
                                   "key_file)") from None
        raise InvalidInput(f"cannot open the audit key {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InvalidInput(f"audit key {path} is not a regular file (a folder, FIFO, device "
                               "or socket is there): move it away and run `mlops init`, or "
                               "name the key file in [audit] key_file")
        forbidden = 0o007 if group_readable else 0o077
        if mode & forbidden:
            raise PermissionDenied(
                f"audit key {path} is readable or writable by "
                f"{'others' if group_readable else 'group or others'} (mode "
                f"{stat.S_IMODE(mode):04o}): whoever reads it can forge the audit log; "
                f"run `chmod {'640' if group_readable else '600'} {path}`")
        text = os.read(fd, KEY_FILE_READ_LIMIT).decode("ascii", "replace")
    finally:
        os.close(fd)
    return _parse_key_file(path, text)


def _parse_key_file(path: Path, text: str) -> KeyFile:
    """The key (every line but the record, hex) and the `legacy-head:` record."""
    key_lines, legacy_head = [], UNRECORDED
    for line in text.splitlines():
        if not line.startswith(LEGACY_HEAD_FIELD):
            key_lines.append(line)
            continue
        value = line[len(LEGACY_HEAD_FIELD):].strip()
        try:
            legacy_head = None if value == "none" else parse_head(value)
        except InvalidInput:
            raise InvalidInput(f"audit key {path}: its {LEGACY_HEAD_FIELD} line is malformed "
                               f"({value[:80]!r}); it should be `none` or ID:HASH, as "
                               "`mlops init` writes it") from None
    try:
        key = bytes.fromhex("".join(key_lines))
    except ValueError:
        key = b""
    if len(key) * 2 < KEY_HEX_CHARS:
        raise InvalidInput(f"audit key {path} does not hold a key of {KEY_HEX_CHARS} hex "
                           "characters; move it away and run `mlops init` to write a new one "
                           "(rows keyed with a lost key no longer verify)")
    return KeyFile(key, legacy_head)


def create_key(conn: sqlite3.Connection, path: Path, mode: int = 0o600) -> bool:
    """Write a fresh random key file for the log on `conn` at `path`, unless one exists.

    The file records where the unkeyed log ends (`legacy-head:`), so that
    `seal()` later seals those rows and none written after the key. Refuses
    (`Conflict`, nothing written) when the log already holds keyed rows: their
    key is lost or misplaced, and a new one would let whoever runs `mlops init`
    re-chain the log. Returns whether a key was written; `O_EXCL` makes
    concurrent inits agree on one key (the loser sees the winner's file).
    """
    import secrets

    if os.path.lexists(path):
        return False
    with write(conn):  # the recorded head is the log's end, with no writer in between
        keyed = conn.execute("SELECT id FROM audit_log WHERE hash LIKE ? ORDER BY id LIMIT 1",
                             (f"{KEYED}:%",)).fetchone()
        if keyed is not None:
            raise Conflict(
                f"the audit key {path} is missing, but the audit log holds rows keyed with "
                f"it (from row {keyed[0]}): restore that file (from a backup, or wherever "
                "your admin keeps it; [audit] key_file says where it is looked for). No new "
                "key was written: one would not verify those rows, and would let the log "
                "be re-chained")
        last = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1"
                            ).fetchone()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            return False
        os.fchmod(fd, mode)  # explicitly, whatever the umask
        record = "none" if last is None else f"{last[0]}:{last[1]}"
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(f"{secrets.token_hex(32)}\n{LEGACY_HEAD_FIELD} {record}\n")
            out.flush()
            os.fsync(out.fileno())
    return True


def attach_key(conn: sqlite3.Connection, key: AuditKey) -> None:
    """Bind `key` to `conn`: `append()` on this connection chains with it.

    The key rides on the connection (`conn.audit_key`), so every repository
    sharing it chains with the same key; MACs are computed in Python inside the
    caller's transaction, which works alike on SQLite and PostgreSQL (which
    can't call Python). A plain `sqlite3.Connection` also gets the key as the
    SQL function `mlops_audit_mac`.
    """
    if isinstance(conn, StoreConnection) or getattr(conn, "dialect", None) == "postgresql":
        conn.audit_key = key
        return

    def sql_mac(message: str) -> str:
        try:
            return key.mac(message.encode("utf-8"))
        except KeyMissing as exc:
            return f"{_ERROR_MARK}{KeyMissing.__name__}:{exc.path}"
        except MlopsError as exc:
            return f"{_ERROR_MARK}{type(exc).__name__}:{exc}"

    conn.create_function(_MAC_FUNCTION, 1, sql_mac, deterministic=True)


def _mac(conn: sqlite3.Connection, message: str, *, keyed_log: bool = False) -> str:
    """The MAC of `message` under the key bound to `conn`; `keyed_log`: the log holds
    keyed rows (a missing key is then one to restore, not to create)."""
    key = getattr(conn, "audit_key", None)
    if key is not None:
        try:
            return key.mac(message.encode("utf-8"))
        except KeyMissing as exc:
            if keyed_log:
                raise exc.in_keyed_log() from None
            raise
    try:
        result = conn.execute(f"SELECT {_MAC_FUNCTION}(?)", (message,)).fetchone()[0]
    except sqlite3.OperationalError:
        raise MlopsError("this database connection has no audit key: open the store with "
                         "`Store(path, audit_key_path=...)` or `Store.for_project(project)`"
                         ) from None
    if result.startswith(_ERROR_MARK):
        kind, _, text = result[len(_ERROR_MARK):].partition(":")
        if kind == KeyMissing.__name__:
            raise KeyMissing(Path(text), keyed_log=keyed_log)
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

    Raises `Conflict` (nothing written) if the last row is not one to chain onto:
    unsealed legacy rows (see `seal()`), or a row whose MAC or link is wrong
    (forged or edited without the key); and the key's errors if the key file is
    missing or unsafe.
    """
    return _insert(conn, _checked_tail(conn), actor, action, subject, reason, payload)


def _checked_tail(conn: sqlite3.Connection) -> tuple[int, str] | None:
    """(id, hash) of the last row after checking it, or None for an empty log.

    The last row's MAC is recomputed and its link to the row before compared:
    one MAC and one two-row read, whatever the log's length.
    """
    rows = conn.execute(f"SELECT {_COLUMNS} FROM audit_log ORDER BY id DESC LIMIT 2"
                        ).fetchall()
    if not rows:
        return None
    last, before = rows[0], rows[1] if len(rows) > 1 else None
    row_id, stored_prev, stored = last[0], last[7], last[8]
    if not stored.startswith(f"{KEYED}:"):
        if before is not None and before[8].startswith(f"{KEYED}:"):
            raise Conflict(f"the audit log's last row {row_id} carries no MAC but follows "
                           "keyed rows: it was written without the audit key (forged), so "
                           "nothing was written after it; run `mlops audit verify` and "
                           "restore the database from a backup")
        raise Conflict(f"the audit log ends in row {row_id}, which carries no MAC (written "
                       "before the audit key existed, or without it), so nothing was "
                       "written; `mlops audit seal` seals rows that predate the key, after "
                       "you have checked them (`mlops audit ls`), and refuses later ones")
    expected_id = 1 if before is None else before[0] + 1
    expected_prev = GENESIS if before is None else before[8]
    problem = None
    if row_id != expected_id:
        problem = f"row {expected_id} before it is missing"
    elif stored_prev != expected_prev:
        problem = "its link to the row before it is broken"
    else:
        canonical = _canonical(*last[:8])
        if not _same_mac(_mac(conn, _keyed_message(canonical), keyed_log=True), stored):
            problem = ("its content does not match its MAC (forged or edited without the "
                       "key, or the key file is not the one that wrote it)")
    if problem is not None:
        raise Conflict(f"the audit log's last row {row_id} can't be chained onto: {problem}; "
                       "nothing was written. Run `mlops audit verify`, and restore the "
                       "database (or the key file) from a backup")
    return row_id, stored


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


def checked_entry(conn: sqlite3.Connection, action: str, subject: str,
                  request_id: int) -> AuditEntry | None:
    """The row `action` on `subject` whose payload names release request `request_id`,
    with its MAC (or, for a sealed pre-key row, its hash) recomputed; None if there is
    none. Raises `IntegrityError` when the row does not match what it was signed as.

    Other tables are not chained: a record that a decision rests on (who requested,
    what evidence) is checked against the row the log signed when it was made.
    """
    from ..errors import IntegrityError

    for row in conn.execute(f"SELECT {_COLUMNS} FROM audit_log WHERE action = ? AND "
                            "subject = ? ORDER BY id", (action, subject)):
        payload = json.loads(row[6])
        if payload.get("request") != request_id:
            continue
        canonical = _canonical(*row[:8])
        stored = row[8]
        if stored.startswith(f"{KEYED}:"):
            good = _same_mac(_mac(conn, _keyed_message(canonical), keyed_log=True), stored)
        else:
            good = _legacy_hash(canonical) == stored
        if not good:
            raise IntegrityError(f"audit row {row[0]} ({action} {subject})", "its MAC",
                                 "content that does not match it")
        return AuditEntry(*row[:6], payload, row[7], row[8])
    return None


def alias_problems(conn: sqlite3.Connection) -> list[str]:
    """Aliases whose version is not the one their last "alias moved" row moved them to
    (the aliases table is not chained: an alias set by editing it shows here)."""
    moved: dict[tuple[str, str], object] = {}
    for subject, payload in conn.execute("SELECT subject, payload FROM audit_log WHERE "
                                         "action = 'alias moved' ORDER BY id"):
        moved[(subject.rsplit(":", 1)[0], json.loads(payload).get("alias"))] = \
            json.loads(payload).get("to")
    problems = []
    for name, alias, version in conn.execute("SELECT name, alias, version FROM aliases "
                                             "ORDER BY name, alias"):
        signed = moved.get((name, alias), "no row")
        if signed != version:
            problems.append(f"{name}@{alias} points at version {version}, but the audit "
                            f"log last moved it to {signed}")
    return problems


def text_digest(text: str) -> str:
    """The digest an audit row records of a stored text (a request's evidence)."""
    return f"{LEGACY}:" + blake3.blake3(text.encode("utf-8")).hexdigest()


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

    def alias_problems(self) -> list[str]:
        """See `alias_problems()`."""
        return alias_problems(self._conn)

    def head(self) -> tuple[int, str] | None:
        """(id, hash) of the last row, or None for an empty log."""
        row = self._conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1"
                                 ).fetchone()
        return None if row is None else (row[0], row[1])

    def create_key(self, mode: int = 0o600) -> bool:
        """Write this log's key file unless one exists (see `create_key()`)."""
        return create_key(self._conn, self._key.path, mode)

    def seal(self, actor: str) -> int | None:
        """Seal unkeyed legacy rows under the key with one keyed row; None if nothing to seal.

        Run once after upgrading a store written before the audit key existed:
        the new row's MAC covers the last legacy hash, so the legacy rows can no
        longer be rewritten unseen. Only rows that predate the key are sealed:
        `Conflict` (nothing written) for unkeyed rows after a keyed one, rows
        after the legacy head the key file recorded (any, if it recorded an
        empty log), a recorded head that was rewritten or cut, or a broken
        legacy chain.
        """
        with write(self._conn) as conn:
            last = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1"
                                ).fetchone()
            if last is None or last[1].startswith(f"{KEYED}:"):
                return None
            _check_legacy_tail(conn, last[0])
            _check_recorded_head(conn, self._key, last[0])
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


_NEVER_SEALED = ("nothing was sealed: a seal would vouch for them. Run `mlops audit verify` "
                 "and restore the database from a backup")


def _no_mac(first: int, last: int) -> str:
    return f"row {first} carries no MAC" if first == last else f"rows {first}-{last} carry no MAC"


def _check_legacy_tail(conn: sqlite3.Connection, last_id: int) -> None:
    """Refuse to seal unkeyed rows that come after a keyed row: written without the key."""
    keyed = conn.execute("SELECT MAX(id) FROM audit_log WHERE hash LIKE ?",
                         (f"{KEYED}:%",)).fetchone()[0]
    if keyed is not None:
        first = conn.execute("SELECT MIN(id) FROM audit_log WHERE id > ? AND hash NOT LIKE ?",
                             (keyed, f"{KEYED}:%")).fetchone()[0]
        raise Conflict(f"{_no_mac(first, last_id)} after keyed row {keyed} (forged: written "
                       f"after the audit key existed, without it); {_NEVER_SEALED}")


def _check_recorded_head(conn: sqlite3.Connection, key: AuditKey, last_id: int) -> None:
    """Refuse to seal anything but the legacy log the key file recorded at its creation."""
    recorded = key.read().legacy_head
    if isinstance(recorded, _Unrecorded):
        return  # a key file made by hand: the rows can only be taken as they stand
    if recorded is None:
        raise Conflict(f"{_no_mac(1, last_id)}, and the audit key {key.path} was created "
                       "when the audit log was empty (forged: written after the key, without "
                       f"it); {_NEVER_SEALED}")
    head_id, head_hash = recorded
    if last_id > head_id:
        raise Conflict(f"{_no_mac(head_id + 1, last_id)} after row {head_id}, where the "
                       f"unkeyed log ended when the audit key {key.path} was created "
                       f"(forged: written after the key, without it); {_NEVER_SEALED}")
    row = conn.execute("SELECT hash FROM audit_log WHERE id = ?", (head_id,)).fetchone()
    if row is None:
        raise Conflict(f"the audit log ends at row {last_id}, but when the audit key "
                       f"{key.path} was created it reached row {head_id}: rows were cut off; "
                       f"{_NEVER_SEALED}")
    if not _same_mac(row[0], head_hash):
        raise Conflict(f"row {head_id} differs from the one the audit key {key.path} recorded "
                       f"when it was created: the unkeyed rows were rewritten since; "
                       f"{_NEVER_SEALED}")


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
            try:
                mac = self.key.mac(_keyed_message(canonical).encode("utf-8"))
            except KeyMissing as exc:
                raise exc.in_keyed_log() from None
            if not _same_mac(mac, stored):
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
