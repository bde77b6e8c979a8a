"""Record streams of the team server: how far each run's records were applied.

A client numbers the records of one run 1, 2, 3, ... in a stream named by the
run's uuid. The server applies a batch and moves the stream's `applied_seq`
in one transaction, so a record at or below the mark was applied exactly
once and a retried batch adds nothing. A stream belongs to the user whose
token started it. The model versions a stream's records registered are kept
by sequence number, so a retried `model` record gets its version back.

Every call here is meant to run inside the caller's `Store.transaction()`.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from .connection import write


@dataclass(frozen=True)
class Stream:
    uuid: str
    run_id: int
    user: str
    applied_seq: int


class StreamRepository:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, uuid: str) -> Stream | None:
        row = self._conn.execute("SELECT uuid, run_id, user_name, applied_seq FROM "
                                 "record_streams WHERE uuid = ?", (uuid,)).fetchone()
        return None if row is None else Stream(*row)

    def bind(self, uuid: str, run_id: int, user: str) -> Stream:
        """A new stream for run `run_id`, owned by `user`, nothing applied yet."""
        with write(self._conn) as conn:
            conn.execute("INSERT INTO record_streams (uuid, run_id, user_name, applied_seq, "
                         "updated_at) VALUES (?, ?, ?, 0, ?)", (uuid, run_id, user, time.time()))
        return Stream(uuid, run_id, user, 0)

    def advance(self, uuid: str, applied_seq: int) -> None:
        """Move the stream's mark to `applied_seq` (in the transaction that applied them)."""
        with write(self._conn) as conn:
            conn.execute("UPDATE record_streams SET applied_seq = ?, updated_at = ? "
                         "WHERE uuid = ?", (applied_seq, time.time(), uuid))

    def note_model(self, uuid: str, seq: int, name: str, version: int) -> None:
        """Remember that record `seq` of the stream registered `name:version`."""
        with write(self._conn) as conn:
            conn.execute("INSERT INTO stream_models (stream, seq, name, version) "
                         "VALUES (?, ?, ?, ?)", (uuid, seq, name, version))

    def models(self, uuid: str, first_seq: int, last_seq: int) -> list[tuple[int, str, int]]:
        """(seq, name, version) of the models records `first_seq`..`last_seq` registered."""
        if last_seq < first_seq:  # nothing of a batch was applied before: no round trip
            return []
        return [tuple(row) for row in self._conn.execute(
            "SELECT seq, name, version FROM stream_models WHERE stream = ? AND seq >= ? "
            "AND seq <= ? ORDER BY seq", (uuid, first_seq, last_seq))]
