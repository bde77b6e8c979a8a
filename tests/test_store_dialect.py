"""How a statement written for SQLite is rewritten for PostgreSQL (no database needed)."""

from __future__ import annotations

import pytest

from jupyter_mlops.store.postgres import Catalog, safe_url, translate

CATALOG = Catalog(
    columns={"tags": ["run_id", "key", "value"], "runs": ["id", "uuid", "user"],
             "aliases": ["name", "alias", "version", "updated_at"]},
    keys={"tags": ["run_id", "key"], "runs": ["id"], "aliases": ["name", "alias"]},
    with_rowid={"tags", "aliases"})


@pytest.mark.parametrize(("sqlite", "postgresql"), [
    ("SELECT value FROM params WHERE run_id = ? AND key = ?",
     "SELECT value FROM params WHERE run_id = %s AND key = %s"),
    ("SELECT 1 FROM runs r WHERE r.id = :id AND r.heartbeat_at < :stale_before",
     "SELECT 1 FROM runs r WHERE r.id = %(id)s AND r.heartbeat_at < %(stale_before)s"),
    ("SELECT '?', ':x', 'it''s ?' FROM t WHERE a = ?",  # literals are left alone
     "SELECT '?', ':x', 'it''s ?' FROM t WHERE a = %s"),
    ("SELECT 5 % 2 FROM t", "SELECT 5 %% 2 FROM t"),
    ("SELECT 'a%b', \"odd%name\" FROM t", "SELECT 'a%%b', \"odd%%name\" FROM t"),
    ("SELECT id FROM runs WHERE uuid LIKE ? LIMIT 2",
     "SELECT id FROM runs WHERE uuid ILIKE %s ESCAPE '' LIMIT 2"),
    ("INSERT OR IGNORE INTO tags VALUES (?, ?, ?)",
     "INSERT INTO tags (run_id, key, value) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"),
    ("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?, ?)",
     "INSERT INTO aliases (name, alias, version, updated_at) VALUES (%s, %s, %s, %s) "
     "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, "
     "updated_at = excluded.updated_at, rowid = DEFAULT"),
    ('INSERT INTO runs (uuid, "user") VALUES (?, ?)',
     'INSERT INTO runs (uuid, "user") VALUES (%s, %s) RETURNING id'),
    ("INSERT OR IGNORE INTO runs VALUES (?, ?, ?)",
     'INSERT INTO runs (id, uuid, "user") VALUES (%s, %s, %s) ON CONFLICT DO NOTHING '
     "RETURNING id"),
])
def test_statements_are_rewritten(sqlite: str, postgresql: str) -> None:
    assert translate(sqlite, CATALOG) == postgresql


def test_executemany_inserts_return_nothing() -> None:
    assert translate("INSERT INTO runs (uuid) VALUES (?)", CATALOG, single=False) == \
        "INSERT INTO runs (uuid) VALUES (%s)"


def test_sqlites_lenient_cast_is_kept() -> None:
    sql = translate("SELECT 1 FROM params v WHERE CAST(v.value AS REAL) > ?", None)
    assert "COALESCE(CAST(substring(v.value from" in sql and sql.endswith("0) > %s")


def test_an_unknown_table_is_named() -> None:
    with pytest.raises(Exception, match="no such table: nowhere"):
        translate("INSERT INTO nowhere VALUES (?)", CATALOG)


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
])
def test_passwords_never_reach_messages(url: str, shown: str) -> None:
    assert safe_url(url) == shown
