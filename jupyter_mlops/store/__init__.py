"""The metadata store: one SQLite file (embedded), or a PostgreSQL database (team
mode), reached only through `Store`.

`Store` is the narrow interface the rest of the package uses; each resource has
its own repository (`store.runs`, `store.datasets`, ...) that hands out frozen
dataclasses. The repositories' SQL is written once for SQLite;
`store.postgres.PgConnection` runs it on PostgreSQL (see there why).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import NotFound
from . import schema
from .artifacts import ArtifactRepository
from .audit import AuditKey, AuditRepository, attach_key
from .connection import (
    BUSY_TIMEOUT_SECONDS,
    StoreConnection,
    check_local_filesystem,
    connect,
    write,
)
from .datasets import DatasetRepository
from .environments import EnvironmentRepository
from .gates import GateRepository
from .models import ModelRepository
from .pipelines import PipelineRepository
from .predictions import PredictionRepository
from .releases import ReleaseRepository
from .runs import RunRepository

if TYPE_CHECKING:
    from ..project import Project
    from .streams import StreamRepository
    from .tokens import TokenRepository

AUDIT_KEY_NAME = "audit.key"
SQLITE_SCHEME = "sqlite:///"
NO_AUDIT_KEY = "(none given: open a PostgreSQL store with Store(url, audit_key_path=...))"


class Store:
    """An open store. Opening never creates or changes tables: call `migrate()`.

    `target` is the SQLite file's path (or `sqlite:///path`), or a PostgreSQL
    URL (`postgresql://user@host:port/database`), whose database must exist.
    `path` is the SQLite file (None on PostgreSQL), `url` the PostgreSQL URL
    (None on SQLite).

    `audit_key_path` is the audit chain's HMAC key file (default: `audit.key`
    beside the SQLite database, where `mlops init` writes it; a PostgreSQL
    store must be given one to append to or verify its audit log); it is read
    on the first audit append or verify, not here. `Store.for_project()` takes
    the path the project's config names.

    Raises `NotFound` for a missing SQLite file (unless `create`), and
    `StoreUnavailable` when the PostgreSQL server can't be reached.
    """

    def __init__(self, target: str | os.PathLike[str], *, stale_after_seconds: float = 120.0,
                 create: bool = False, audit_key_path: str | os.PathLike[str] | None = None,
                 audit_key_group_readable: bool = False,
                 busy_seconds: float = BUSY_TIMEOUT_SECONDS) -> None:
        self.path: Path | None = None
        self.url: str | None = None
        text = os.fspath(target)
        if text.startswith(("postgresql://", "postgres://")):
            from . import postgres  # psycopg only for a PostgreSQL store

            self.url = text
            self._conn = postgres.connect(text, busy_seconds)
            default_key = Path(NO_AUDIT_KEY)
        else:
            if text.startswith(SQLITE_SCHEME):
                text = text[len(SQLITE_SCHEME):]
            self.path = Path(text)
            if not create and not self.path.exists():
                raise NotFound(f"no store at {self.path}; run `mlops init` first")
            self._conn = connect(self.path, busy_seconds)
            default_key = self.path.parent / AUDIT_KEY_NAME
        self.audit_key = AuditKey(default_key if audit_key_path is None else audit_key_path,
                                  group_readable=audit_key_group_readable)
        attach_key(self._conn, self.audit_key)
        self.runs = RunRepository(self._conn, stale_after_seconds)
        self.datasets = DatasetRepository(self._conn)
        self.artifacts = ArtifactRepository(self._conn)
        self.models = ModelRepository(self._conn)
        self.environments = EnvironmentRepository(self._conn)
        self.pipelines = PipelineRepository(self._conn, stale_after_seconds)
        self.releases = ReleaseRepository(self._conn)
        self.gates = GateRepository(self._conn)
        self.audit = AuditRepository(self._conn, self.audit_key)
        self.predictions = PredictionRepository(self._conn)

    @classmethod
    def for_project(cls, project: Project, *, create: bool = False,
                    busy_seconds: float = BUSY_TIMEOUT_SECONDS) -> Store:
        """The store of `project`, with its configured audit key and stale-run timeout
        (`busy_seconds`: how long a write waits for another process's lock).

        Every door that opens a project's store comes through here, so each
        refuses a store on a network filesystem (`NetworkFilesystem`) unless
        `[store] allow_network_fs = true`: SQLite's WAL loses writes there.
        """
        check_local_filesystem(project.home, allow=project.store.allow_network_fs)
        return cls(project.db_path, stale_after_seconds=project.tracking.stale_after_seconds,
                   create=create, audit_key_path=project.audit_key_path,
                   audit_key_group_readable=project.store.group_shared,
                   busy_seconds=busy_seconds)

    @cached_property
    def tokens(self) -> TokenRepository:
        """The team server's bearer tokens (imported on first use: hashlib and secrets
        would cost `%load_ext` and `mlops runs ls` milliseconds for nothing)."""
        from .tokens import TokenRepository

        return TokenRepository(self._conn)

    @cached_property
    def streams(self) -> StreamRepository:
        """The team server's record streams (applied records), on first use."""
        from .streams import StreamRepository

        return StreamRepository(self._conn)

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return "sqlite" if self.url is None else "postgresql"

    def transaction(self) -> AbstractContextManager[StoreConnection]:
        """One write transaction around several repository calls: all kept or none.

        Each call's own write joins it as a savepoint, so a call that raises undoes
        only itself; `with store.transaction(): ...` commits when the block ends.
        """
        return write(self._conn)

    def migrate(self) -> list[int]:
        """Apply pending migrations (idempotent, safe when many processes start at once)."""
        return schema.migrate(self._conn)

    @property
    def schema_version(self) -> int:
        return schema.current_version(self._conn)

    def needs_migration(self) -> bool:
        return self.schema_version < schema.SCHEMA_VERSION

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Store"]
