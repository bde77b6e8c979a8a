"""Opening the SQLite file and the one way to write to it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_SECONDS = 60.0


def connect(path: str | Path) -> sqlite3.Connection:
    """Open the store's database for this thread.

    Autocommit mode (`isolation_level=None`): reads take no lock, and every
    write goes through `write()`, which takes the write lock up front with
    `BEGIN IMMEDIATE` so that concurrent writers queue on the busy timeout
    instead of failing with "database is locked".
    """
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction: `BEGIN IMMEDIATE` ... `COMMIT`, rolled back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
