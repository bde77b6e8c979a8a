"""Records of stored artifacts (by digest) and their links to runs.

The bytes themselves live in the content-addressed folder (`jupyter_mlops.artifacts`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from .connection import write
from .records import ArtifactLink


class ArtifactRepository:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def link(self, run_id: int, name: str, digest: str, size: int, kind: str) -> ArtifactLink:
        [link] = self.link_many([ArtifactLink(run_id=run_id, name=name, digest=digest,
                                              size=size, kind=kind)])
        return link

    def link_many(self, links: Sequence[ArtifactLink]) -> list[ArtifactLink]:
        """Record stored bytes and link them to their runs, all in one transaction.

        A logged folder is linked this way: every file of it, or none.
        """
        now = time.time()
        with write(self._conn) as conn:
            conn.executemany("INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?)",
                             [(link.digest, link.size, now) for link in links])
            conn.executemany("INSERT OR REPLACE INTO run_artifacts VALUES (?, ?, ?, ?)",
                             [(link.run_id, link.name, link.digest, link.kind)
                              for link in links])
        return list(links)

    def record(self, digest: str, size: int) -> None:
        """Record stored bytes that belong to no run (yet)."""
        with write(self._conn) as conn:
            conn.execute("INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?)",
                         (digest, size, time.time()))

    def for_run(self, run_id: int) -> list[ArtifactLink]:
        rows = self._conn.execute(
            "SELECT ra.run_id, ra.name, ra.digest, a.size, ra.kind FROM run_artifacts ra "
            "JOIN artifacts a ON a.digest = ra.digest WHERE ra.run_id = ? ORDER BY ra.rowid",
            (run_id,)).fetchall()
        return [ArtifactLink(*row) for row in rows]

    def all_digests(self) -> Iterator[tuple[str, int]]:
        yield from self._conn.execute("SELECT digest, size FROM artifacts ORDER BY digest")

    @contextmanager
    def locked_references(self) -> Iterator[set[str]]:
        """Every digest the database refers to, read under the write lock (`BEGIN
        IMMEDIATE`), which is held until the block exits.

        `mlops gc --delete` decides and deletes inside this block, so no writer
        can commit a new reference to a blob while it is being removed.
        """
        with write(self._conn) as conn:
            yield {row[0] for row in conn.execute(
                "SELECT digest FROM artifacts UNION SELECT digest FROM run_artifacts "
                "UNION SELECT digest FROM model_versions")}
