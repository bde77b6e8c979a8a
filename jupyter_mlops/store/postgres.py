"""The store on PostgreSQL: a psycopg 3 connection that speaks the repositories' SQL.

The repositories are written once, in the SQL SQLite runs as it is (so the
embedded hot path pays nothing for a second database). `PgConnection` offers
the few `sqlite3.Connection` members they use (`execute`, `executemany`,
`in_transaction`, the write lock of `StoreConnection`) and rewrites each
statement once, then from a cache:

- `?` and `:name` placeholders become `%s` and `%(name)s` (a `%`, in a literal
  too, `%%`);
- `INSERT OR IGNORE` gets `ON CONFLICT DO NOTHING`, `INSERT OR REPLACE` an upsert
  of every column on the table's primary key, `INSERT INTO t VALUES` the
  table's column list, and an INSERT into a table with an `id` a `RETURNING id`
  (read back as `lastrowid`);
- `LIKE` becomes `ILIKE ... ESCAPE ''` (SQLite's LIKE ignores ASCII case and
  has no escape character), and `CAST(x AS REAL)` SQLite's lenient cast (the
  number at the start of the text, else 0);
- `BEGIN IMMEDIATE` becomes `BEGIN` plus a transaction-level advisory lock, so
  writers queue one at a time as they do on SQLite's write lock (a model's next
  version number, a param's write-once check and the audit chain's next row are
  read and written with no other writer in between). Reads take no lock.

One member SQLite's connection lacks: `copy_rows`, a bulk insert by `COPY ...
FROM STDIN` (a batch of metric points in one round trip; `runs.log_metrics`
uses it on PostgreSQL only).

Tables without an integer `id` get a hidden `rowid` identity column (SQLite's
implicit rowid), so `ORDER BY rowid` keeps insertion order on both.

NaN: SQLite stores a NaN as NULL. The same is done here (a NaN parameter, or a
NaN in an array parameter or a copied row, is bound as NULL), so the filter
language, `metric_history` and every reader see the same values on both
databases; infinities are stored as themselves on both.

Database faults (server down, connection lost, disk full, read-only, a lock
waited for past `busy_seconds`) raise `StoreUnavailable` with one line. Other
errors are raised as the `sqlite3` exception of the same category
(`IntegrityError`, `OperationalError`...), carrying PostgreSQL's message, so
callers catch one family whichever database is behind the store.

psycopg is imported here only, and this module only when a `postgresql://`
URL is opened: the embedded path never loads it.
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import StoreUnavailable

WRITE_LOCK_KEY = 0x6D6C6F7073_01  # pg_advisory_xact_lock key of the store's write lock
DIALECT = "postgresql"
URL_SCHEMES = ("postgresql://", "postgres://")
CONNECT_TIMEOUT_SECONDS = 10


def is_url(target: object) -> bool:
    """Whether `target` names a PostgreSQL database (`postgresql://...`)."""
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


def safe_url(url: str) -> str:
    """`url` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class PgIntegrityError(sqlite3.IntegrityError):
    """A constraint PostgreSQL enforced (unique, foreign key, not null, the audit log's
    append-only trigger)."""


class PgOperationalError(sqlite3.OperationalError):
    """A statement PostgreSQL refused for a reason other than a constraint."""


class PgDataError(sqlite3.DataError):
    """A value PostgreSQL could not take (out of range, not a number...)."""


class PgResult:
    """A statement's rows (fetched with it), and `lastrowid` for an INSERT ... RETURNING id."""

    __slots__ = ("_rows", "lastrowid", "rowcount")

    def __init__(self, rows: list[tuple], lastrowid: int | None, rowcount: int) -> None:
        self._rows = rows
        self.lastrowid = lastrowid
        self.rowcount = rowcount

    def fetchone(self) -> tuple | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[tuple]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[tuple]:
        rows, self._rows = self._rows, []
        return iter(rows)


# -- translation ------------------------------------------------------------------------

_LEXEME = re.compile(r"""'(?:[^']|'')*'|"[^"]*"|\?|:[A-Za-z_]\w*|%|[^'"?:%]+|:""")
_INSERT = re.compile(r"^\s*INSERT\s+(?:OR\s+(IGNORE|REPLACE)\s+)?INTO\s+(\w+)\s*(\()?", re.I)
_LIKE = re.compile(r"\bLIKE\s+(%s|%\(\w+\)s)", re.I)
_CAST_REAL = re.compile(r"CAST\(([\w.]+) AS REAL\)", re.I)
# SQLite's CAST(text AS REAL): the longest number at the start of the text, else 0.
_LENIENT_REAL = ("COALESCE(CAST(substring({} from "
                 r"'^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d{{1,3}})?)') "
                 "AS DOUBLE PRECISION), 0)")


class Catalog:
    """Each table's columns (in order, without the hidden rowid), its primary key, and
    which tables have the hidden rowid."""

    def __init__(self, columns: Mapping[str, list[str]], keys: Mapping[str, list[str]],
                 with_rowid: Iterable[str] = ()) -> None:
        self.columns = dict(columns)
        self.keys = dict(keys)
        self.with_rowid = set(with_rowid)

    def table(self, name: str) -> tuple[list[str], list[str]]:
        if name not in self.columns:
            raise PgOperationalError(f"no such table: {name}")
        return self.columns[name], self.keys.get(name, [])


def _placeholders(sql: str) -> str:
    out = []
    for lexeme in _LEXEME.findall(sql):
        if lexeme == "?":
            out.append("%s")
        elif lexeme == "%":
            out.append("%%")
        elif lexeme.startswith(":") and len(lexeme) > 1:
            out.append(f"%({lexeme[1:]})s")
        elif lexeme[0] in "'\"":  # psycopg reads % in literals too
            out.append(lexeme.replace("%", "%%"))
        else:
            out.append(lexeme)
    return "".join(out)


def translate(sql: str, catalog: Catalog | None, *, single: bool = True) -> str:
    """The PostgreSQL form of one statement the repositories write for SQLite.

    `single`: the statement runs once (not `executemany`), so an INSERT can
    return the new row's id. `catalog` is needed for INSERTs only.
    """
    text = _placeholders(sql)
    text = _LIKE.sub(r"ILIKE \1 ESCAPE ''", text)
    text = _CAST_REAL.sub(lambda m: _LENIENT_REAL.format(m.group(1)), text)
    match = _INSERT.match(text)
    if match is None:
        return text
    if catalog is None:
        raise PgOperationalError("the table catalog is needed to translate an INSERT")
    conflict, table, has_columns = match.group(1), match.group(2), match.group(3)
    columns, key = catalog.table(table)
    head = f"INSERT INTO {table} " + ("(" if has_columns else
                                       f"({', '.join(_quoted(c) for c in columns)}) ")
    text = head + text[match.end():]
    if conflict and conflict.upper() == "IGNORE":
        text += " ON CONFLICT DO NOTHING"
    elif conflict:
        updates = [f"{_quoted(c)} = excluded.{_quoted(c)}" for c in columns if c not in key]
        if table in catalog.with_rowid:
            updates.append("rowid = DEFAULT")  # a replaced row moves last, as in SQLite
        text += (f" ON CONFLICT ({', '.join(_quoted(c) for c in key)}) DO " +
                 (f"UPDATE SET {', '.join(updates)}" if updates else "NOTHING"))
    if single and "id" in columns and " RETURNING " not in text.upper():
        text += " RETURNING id"
    return text


def _quoted(column: str) -> str:
    return f'"{column}"' if column == "user" else column


def _param(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None  # as SQLite stores it
    if isinstance(value, list):  # an array parameter (one per column of a bulk upsert)
        return [_param(item) for item in value]
    return value


def _params(params: Sequence[Any] | Mapping[str, Any] | None) -> Any:
    if params is None:
        return ()  # not None: psycopg then reads %% as %, as every statement is written
    if isinstance(params, Mapping):
        return {k: _param(v) for k, v in params.items()}
    return [_param(v) for v in params]


# -- the connection ---------------------------------------------------------------------


class PgConnection:
    """One psycopg connection (autocommit, explicit transactions) shared by the threads
    of a process as a `StoreConnection` is: `write_lock` is held for a whole write
    transaction, and for each statement, so a thread's read never lands inside
    another thread's transaction."""

    dialect = DIALECT

    def __init__(self, url: str, busy_seconds: float) -> None:
        self.url = url
        self.busy_seconds = busy_seconds
        self.write_lock = threading.RLock()
        self.write_depth = 0
        self.audit_key: Any = None  # the audit chain's key (audit.attach_key)
        self._pg: Any = None
        self._catalog: Catalog | None = None
        self._translated: dict[tuple[str, bool], str] = {}
        self._connect()

    # -- connection management

    def _connect(self) -> None:
        import psycopg

        try:
            self._pg = psycopg.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                options=f"-c lock_timeout={int(self.busy_seconds * 1000)}")
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot connect to the PostgreSQL store {safe_url(self.url)} "
                f"({_first_line(exc)}): check that the server runs and the URL, user and "
                "database are right") from None

    def _usable(self) -> None:
        """Reconnect a connection lost between transactions (a server restart)."""
        if self._pg.closed or self._pg.broken:
            if self.write_depth:
                raise StoreUnavailable(
                    f"the connection to the PostgreSQL store {safe_url(self.url)} was lost "
                    "in the middle of a transaction; nothing of it was written: try again")
            self._connect()

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self._pg.info.transaction_status in (TransactionStatus.INTRANS,
                                                    TransactionStatus.INERROR)

    def forget_catalog(self) -> None:
        """Tables changed (a migration): read the catalog again on the next INSERT."""
        self._catalog = None
        self._translated.clear()

    def catalog(self) -> Catalog:
        if self._catalog is None:
            columns: dict[str, list[str]] = {}
            keys: dict[str, list[str]] = {}
            with_rowid: set[str] = set()
            cursor = self._pg.execute(
                "SELECT c.relname, a.attname, a.attnum FROM pg_attribute a "
                "JOIN pg_class c ON c.oid = a.attrelid "
                "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' "
                "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum")
            for table, column, _ in cursor.fetchall():
                if column == "rowid":
                    with_rowid.add(table)
                else:
                    columns.setdefault(table, []).append(column)
            cursor = self._pg.execute(
                "SELECT c.relname, a.attname FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indrelid "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indisprimary AND c.relnamespace = current_schema()::regnamespace "
                "ORDER BY c.relname, array_position(i.indkey, a.attnum)")
            for table, column in cursor.fetchall():
                keys.setdefault(table, []).append(column)
            self._catalog = Catalog(columns, keys, with_rowid)
        return self._catalog

    def _sql(self, sql: str, single: bool) -> str:
        cached = self._translated.get((sql, single))
        if cached is None:
            needs_catalog = _INSERT.match(sql) is not None
            cached = translate(sql, self.catalog() if needs_catalog else None, single=single)
            self._translated[(sql, single)] = cached
        return cached

    # -- statements

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
                ) -> PgResult:
        """Run one statement written for SQLite; raises as the module docstring says."""
        command = sql.strip().upper()
        with self.write_lock:
            self._usable()
            if command == "BEGIN IMMEDIATE":
                return self._begin()
            try:
                cursor = self._pg.execute(self._sql(sql, True), _params(params))
                rows = cursor.fetchall() if cursor.description is not None else []
            except Exception as exc:
                raise self._fault(exc) from exc
            lastrowid = rows[0][0] if rows and command.startswith("INSERT") else None
            return PgResult(rows, lastrowid, cursor.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | Mapping[str, Any]]
                    ) -> PgResult:
        with self.write_lock:
            self._usable()
            try:
                with self._pg.cursor() as cursor:
                    cursor.executemany(self._sql(sql, False), [_params(r) for r in rows])
                    count = cursor.rowcount
            except Exception as exc:
                raise self._fault(exc) from exc
            return PgResult([], None, count)

    def copy_rows(self, table: str, columns: Sequence[str],
                  rows: Iterable[Sequence[Any]]) -> int:
        """Insert `rows` into `table` with one `COPY ... FROM STDIN`: a bulk insert
        (a batch of metric points) in one round trip instead of one statement per
        row. NaN goes in as NULL, as every other statement binds it. Returns the
        number of rows; raises as `execute` does."""
        names = ", ".join(_quoted(c) for c in columns)
        count = 0
        with self.write_lock:
            self._usable()
            try:
                with self._pg.cursor() as cursor, \
                        cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:  # `v != v`: NaN only, and cheaper than _param here
                        copy.write_row([None if v != v else v for v in row])
                        count += 1
            except Exception as exc:
                raise self._fault(exc) from exc
        return count

    def _begin(self) -> PgResult:
        try:
            # One round trip (no parameters: psycopg sends both statements at once).
            self._pg.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY:d})")
        except Exception as exc:
            fault = self._fault(exc)
            if self.in_transaction and not self._pg.broken:
                self._pg.execute("ROLLBACK")
            raise fault from exc
        return PgResult([], None, -1)

    def _fault(self, exc: Exception) -> Exception:
        """The error to raise for psycopg's `exc` (see the module docstring)."""
        import psycopg
        from psycopg import errors

        if not isinstance(exc, psycopg.Error):
            return exc
        text = _first_line(exc)
        where = f"the PostgreSQL store {safe_url(self.url)}"
        if isinstance(exc, errors.LockNotAvailable):
            return StoreUnavailable(f"nothing was written ({text}): another process held the "
                                    f"store's write lock for more than {self.busy_seconds:g} "
                                    "s; try again when it is done")
        if isinstance(exc, errors.DiskFull):
            return StoreUnavailable(f"nothing was written ({text}): the disk of {where} is "
                                    "full; free some space on the database server")
        if isinstance(exc, errors.ReadOnlySqlTransaction):
            return StoreUnavailable(f"nothing was written ({text}): {where} is read-only "
                                    "(a standby, or default_transaction_read_only is set)")
        if isinstance(exc, errors.InsufficientPrivilege):
            return StoreUnavailable(f"nothing was written ({text}): the database user of "
                                    f"{where} lacks a privilege; ask its admin")
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) or \
                self._pg.broken or self._pg.closed:
            return StoreUnavailable(f"nothing was written: {where} is unreachable ({text}); "
                                    "check that the server runs, then try again")
        if isinstance(exc, psycopg.IntegrityError) or (
                isinstance(exc, errors.RaiseException)):
            return PgIntegrityError(text)
        if isinstance(exc, psycopg.DataError) and "NUL (0x00)" in text:
            from ..errors import InvalidInput

            return InvalidInput("a text holds a NUL character (\\x00), which the "
                                "PostgreSQL store can't keep; nothing was written: remove it")
        if isinstance(exc, psycopg.DataError):
            return PgDataError(text)
        return PgOperationalError(text)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def connect(url: str, busy_seconds: float) -> PgConnection:
    """Open the PostgreSQL store at `url` (`StoreUnavailable` when it can't be reached)."""
    return PgConnection(url, busy_seconds)
