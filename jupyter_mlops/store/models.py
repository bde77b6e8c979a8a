"""Model versions: a stored model file registered under a name and a number."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidInput, NotFound
from . import audit
from .connection import write
from .ids import storable
from .records import ModelVersion

_COLUMNS = "name, version, run_id, digest, flavor, signature, created_at, input_datasets"


class ModelRepository:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def register(self, name: str, *, digest: str, flavor: str, run_id: int | None,
                 signature: Mapping[str, Any] | None, input_datasets: Sequence[str],
                 actor: str = "unknown", size: int | None = None,
                 profile: Mapping[str, Any] | None = None) -> ModelVersion:
        """Add the next version of model `name`; the number is taken under the write lock.

        One transaction holds all of it, so a crash leaves the version whole or
        absent: the version row, its audit row, and, when given, the model file's
        blob record (`size`) with its link to the run (`models/NAME-vN.skops`) and
        the reference profile monitoring compares traffic with.
        """
        created = time.time()
        with write(self._conn) as conn:
            version = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM model_versions"
                                   " WHERE name = ?", (name,)).fetchone()[0]
            if size is not None:  # the version refers to the blob: its record comes first
                conn.execute("INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?)",
                             (digest, size, created))
            conn.execute(
                f"INSERT INTO model_versions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, run_id, digest, flavor,
                 None if signature is None else json.dumps(signature), created,
                 json.dumps(list(input_datasets))))
            if size is not None:
                if run_id is not None:
                    conn.execute("INSERT OR REPLACE INTO run_artifacts VALUES (?, ?, ?, ?)",
                                 (run_id, f"models/{name}-v{version}.skops", digest, "model"))
            if profile is not None:
                conn.execute("INSERT OR REPLACE INTO model_profiles VALUES (?, ?, ?)",
                             (name, version, json.dumps(profile)))
            audit.append(conn, actor=actor, action="version registered",
                         subject=f"{name}:{version}",
                         payload={"run": run_id, "digest": digest, "flavor": flavor})
        return self.get(name, version)

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """A version, or the latest one when `version` is None."""
        if version is None:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? "
                                     "ORDER BY version DESC LIMIT 1", (name,)).fetchone()
        elif not storable(version):
            row = None
        else:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? "
                                     "AND version = ?", (name, version)).fetchone()
        if row is None:
            what = name if version is None else f"{name}:{version}"
            raise NotFound(f"no model version {what}")
        return _model(row)

    def resolve(self, ref: str) -> ModelVersion:
        """A version from `NAME`, `NAME:VERSION` or `NAME@ALIAS`."""
        name, version, alias = parse_model_ref(ref)
        if alias is not None:
            row = self._conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?",
                                     (name, alias)).fetchone()
            if row is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            version = row[0]
        return self.get(name, version)

    def for_run(self, run_id: int) -> list[ModelVersion]:
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM model_versions WHERE run_id = ? "
                                  "ORDER BY name, version", (run_id,)).fetchall()
        return [_model(row) for row in rows]

    def names(self) -> list[str]:
        return [row[0] for row in self._conn.execute(
            "SELECT DISTINCT name FROM model_versions ORDER BY name")]


    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of `name`, newest first."""
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? "
                                  "ORDER BY version DESC", (name,)).fetchall()
        return [_model(row) for row in rows]


def parse_model_ref(ref: str) -> tuple[str, int | None, str | None]:
    """`churn:3` -> ("churn", 3, None); `churn@production` -> ("churn", None, "production");
    `churn` -> ("churn", None, None), meaning the latest version."""
    text = ref.strip()
    name, at, alias = text.partition("@")
    if at:
        if not name or not alias or ":" in text:
            raise InvalidInput(f"model reference {ref!r} should look like NAME, NAME:VERSION "
                               "or NAME@ALIAS")
        return name, None, alias
    name, sep, version = text.partition(":")
    # past 4300 digits int() raises ValueError (and past 19 no version exists)
    if not name or (sep and not (version.isascii() and version.isdigit()
                                 and len(version) <= 100)):
        raise InvalidInput(f"model reference {ref[:80]!r} should look like NAME, "
                           "NAME:VERSION or NAME@ALIAS")
    return name, int(version) if sep else None, None


def _model(row: tuple) -> ModelVersion:
    name, version, run_id, digest, flavor, signature, created, inputs = row
    return ModelVersion(name=name, version=version, run_id=run_id, digest=digest, flavor=flavor,
                        signature=None if signature is None else json.loads(signature),
                        created_at=created, input_datasets=tuple(json.loads(inputs or "[]")))
