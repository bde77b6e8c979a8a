"""Issue 9, point 5: the audit chain is keyed, and truncation is caught with a kept head.

The attacker can write the database (drop the triggers, edit rows, recompute
hashes) but cannot read the key file. Every check goes through the real
`mlops` command in a subprocess on a real SQLite file.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
from dataclasses import replace

import blake3
import pytest

from jupyter_mlops.errors import Conflict, NotFound
from jupyter_mlops.project import Project, find_project
from jupyter_mlops.store import Store

COLUMNS = "id, at, actor, action, subject, reason, payload, prev_hash, hash"


def mlops_cli(project: Project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args],
                          capture_output=True, text=True, cwd=project.root, timeout=300,
                          env={**os.environ, "MLOPS_HOME": str(project.root)})


def plain_blake3(row_id, at, actor, action, subject, reason, payload, prev_hash,
                 label: str = "blake3") -> str:
    """The unkeyed hash the chain used before (what the attacker recomputes)."""
    canonical = json.dumps([row_id, repr(at), actor, action, subject, reason, payload,
                            prev_hash], separators=(",", ":"), ensure_ascii=False)
    return f"{label}:" + blake3.blake3(canonical.encode("utf-8")).hexdigest()


def attacker(project: Project) -> sqlite3.Connection:
    """A raw connection with the append-only triggers dropped."""
    conn = sqlite3.connect(project.db_path, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    return conn


def rehash_everything(conn: sqlite3.Connection, label: str = "blake3") -> None:
    """Recompute every row's hash and link with plain BLAKE3, as the issue's attacker did."""
    prev = "blake3:" + "0" * 64
    for row in conn.execute(f"SELECT {COLUMNS} FROM audit_log ORDER BY id").fetchall():
        digest = plain_blake3(*row[:7], prev, label=label)
        conn.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?",
                     (prev, digest, row[0]))
        prev = digest


def audit_rows(project: Project) -> list[tuple]:
    conn = sqlite3.connect(project.db_path)
    try:
        return conn.execute(f"SELECT {COLUMNS} FROM audit_log ORDER BY id").fetchall()
    finally:
        conn.close()


def change_registry(project: Project, count: int = 1) -> None:
    """Registry changes that append audit rows (unprotected alias moves)."""
    with Store(project.db_path) as store:
        for index in range(count):
            store.releases.set_alias("churn", "staging", index + 1, actor="bob",
                                     reason=f"move {index}")


@pytest.fixture
def logged(project: Project, tracker) -> Project:
    """A project whose audit log holds five keyed rows: churn:1 registered, four moves."""
    return log_five_rows(project)


def log_five_rows(project: Project) -> Project:
    """churn:1 registered by a run of the shared tracker, then moved four times."""
    import numpy as np
    from sklearn.dummy import DummyClassifier

    import jupyter_mlops as mlops

    with mlops.start_run(name="train"):
        mlops.log_model(DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1]), name="churn")
    change_registry(project, 4)
    return project


def test_rows_are_keyed(logged: Project) -> None:
    rows = audit_rows(logged)
    assert len(rows) == 5 and all(r[8].startswith("hmac-sha256:") for r in rows)
    verified = mlops_cli(logged, "audit", "verify")
    assert verified.returncode == 0 and "intact: 5 rows" in verified.stdout


@pytest.mark.parametrize("label", ["blake3", "hmac-sha256"])
def test_an_edit_rehashed_without_the_key_is_broken(logged: Project, label: str) -> None:
    conn = attacker(logged)
    conn.execute("UPDATE audit_log SET reason = 'nothing to see', actor = 'alice' WHERE id = 3")
    rehash_everything(conn, label)
    conn.close()
    result = mlops_cli(logged, "audit", "verify")
    assert result.returncode == 1 and "audit chain BROKEN" in result.stdout, result.stdout
    assert "Traceback" not in result.stderr


def test_keyed_rows_rewritten_after_unkeyed_ones_are_broken(logged: Project) -> None:
    """Rows 1-2 kept, rows 3-5 edited and re-hashed as if they predated the key."""
    conn = attacker(logged)
    conn.execute("UPDATE audit_log SET reason = 'edited' WHERE id = 4")
    rows = conn.execute(f"SELECT {COLUMNS} FROM audit_log ORDER BY id").fetchall()
    prev = rows[1][8]
    for row in rows[2:]:
        digest = plain_blake3(*row[:7], prev)
        conn.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?",
                     (prev, digest, row[0]))
        prev = digest
    conn.close()
    result = mlops_cli(logged, "audit", "verify")
    assert result.returncode == 1 and "BROKEN at row 3" in result.stdout, result.stdout


def test_cutting_rows_off_the_end_is_caught_with_the_kept_head(logged: Project) -> None:
    head = mlops_cli(logged, "audit", "head")
    assert head.returncode == 0
    kept = head.stdout.strip()
    assert kept.startswith("5:hmac-sha256:") and kept == f"5:{audit_rows(logged)[-1][8]}"
    assert mlops_cli(logged, "audit", "verify", "--head", kept).returncode == 0
    conn = attacker(logged)
    conn.execute("DELETE FROM audit_log WHERE id > 3")
    conn.close()
    plain = mlops_cli(logged, "audit", "verify")
    # A shorter chain is consistent in itself; here the cut rows moved an alias, so the
    # aliases give it away, but in general only the kept head shows a cut.
    assert plain.returncode == 1 and "the aliases disagree" in plain.stdout
    result = mlops_cli(logged, "audit", "verify", "--head", kept)
    assert result.returncode == 1 and "BROKEN at row 4" in result.stdout
    assert "cut off" in result.stdout


def test_a_chain_cut_and_regrown_differs_from_the_kept_head(logged: Project) -> None:
    kept = mlops_cli(logged, "audit", "head").stdout.strip()
    conn = attacker(logged)
    conn.execute("DELETE FROM audit_log WHERE id > 3")
    conn.close()
    change_registry(logged, 2)  # honest rows re-grow the chain to five
    assert len(audit_rows(logged)) == 5
    result = mlops_cli(logged, "audit", "verify", "--head", kept)
    assert result.returncode == 1 and "row 5's MAC differs" in result.stdout


@pytest.mark.parametrize("head", ["5", "x:hmac-sha256:00", "0:hmac-sha256:00", "5:abc"])
def test_a_malformed_head_is_refused(logged: Project, head: str) -> None:
    result = mlops_cli(logged, "audit", "verify", "--head", head)
    assert result.returncode == 1 and "mlops audit head" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_wrong_key_breaks_the_chain(logged: Project) -> None:
    key = logged.audit_key_path
    key.write_text(secrets.token_hex(32) + "\n")
    result = mlops_cli(logged, "audit", "verify")
    assert result.returncode == 1 and "BROKEN at row 1" in result.stdout
    assert "key" in result.stdout


@pytest.mark.parametrize(("damage", "message"), [
    ("missing", "until that file is restored"),
    ("public", "chmod 600"),
    ("group", "chmod 600"),
    ("short", "64 hex"),
    ("folder", "regular file"),
])
def test_an_unsafe_key_file_is_refused_and_nothing_changes(logged: Project, damage: str,
                                                          message: str) -> None:
    key = logged.audit_key_path
    if damage == "missing":
        key.unlink()
    elif damage in ("public", "group"):
        key.chmod(0o644 if damage == "public" else 0o640)
    elif damage == "short":
        key.write_text("abcd\n")
    else:
        key.unlink()
        key.mkdir()
    before = audit_rows(logged)
    for command in (["audit", "verify"], ["models", "alias", "churn:1", "canary",
                                          "--reason", "try"]):
        result = mlops_cli(logged, *command)
        assert result.returncode == 1, result.stdout
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "mlops init" not in result.stderr or damage != "missing"  # restore, not re-key
    assert audit_rows(logged) == before
    with Store(logged.db_path) as store:
        assert store.releases.aliases() == {("churn", "staging"): 4}


def test_a_configured_key_file_is_used_by_for_project(logged: Project, tmp_path_factory) -> None:
    elsewhere = tmp_path_factory.mktemp("keys") / "audit.key"
    logged.audit_key_path.rename(elsewhere)
    config = logged.home / "config.toml"
    config.write_text(config.read_text() + f'\n[audit]\nkey_file = "{elsewhere}"\n'
                      if "[audit]" not in config.read_text()
                      else config.read_text().replace(
                          "[audit]", f'[audit]\nkey_file = "{elsewhere}"', 1))
    project = find_project(logged.root)
    assert project.audit_key_path == elsewhere
    with Store.for_project(project) as store:
        assert store.audit.verify().ok
        store.releases.set_alias("churn", "canary", 1, actor="bob", reason="configured key")
        assert store.audit.verify().ok
    with Store(project.db_path) as store, pytest.raises(NotFound, match="is missing"):
        store.audit.verify()


def test_group_shared_stores_accept_a_group_readable_key(logged: Project) -> None:
    logged.audit_key_path.chmod(0o640)
    shared = replace(logged, store=replace(logged.store, group_shared=True))
    with Store.for_project(shared) as store:
        assert store.audit.verify().ok
    logged.audit_key_path.chmod(0o604)
    with Store.for_project(shared) as store, pytest.raises(Exception, match="chmod 640"):
        store.audit.verify()


# -- stores written before the key existed ---------------------------------------------------

@pytest.fixture
def legacy(logged: Project) -> Project:
    """The same five rows as a store written before the keyed log left them (plain BLAKE3,
    no key file), upgraded by running `mlops init`, which writes the key."""
    conn = attacker(logged)
    rehash_everything(conn)
    conn.close()
    logged.audit_key_path.unlink()
    assert mlops_cli(logged, "init").returncode == 0
    return logged


def test_unsealed_legacy_rows_are_reported_and_block_appends(legacy: Project) -> None:
    result = mlops_cli(legacy, "audit", "verify")
    assert result.returncode == 1 and "rows 1-5 carry no MAC" in result.stdout
    assert "mlops audit seal" in result.stdout
    before = audit_rows(legacy)
    moved = mlops_cli(legacy, "models", "alias", "churn:1", "canary", "--reason", "x")
    assert moved.returncode == 1 and "mlops audit seal" in moved.stderr
    assert audit_rows(legacy) == before
    with Store(legacy.db_path) as store, pytest.raises(Conflict, match="seal"):
        store.releases.set_alias("churn", "canary", 1, actor="bob", reason="x")


def test_sealing_keys_the_chain_from_then_on(legacy: Project) -> None:
    sealed = mlops_cli(legacy, "audit", "seal")
    assert sealed.returncode == 0 and "keyed row 6" in sealed.stdout
    assert "nothing to seal" in mlops_cli(legacy, "audit", "seal").stdout
    change_registry(legacy, 1)
    result = mlops_cli(legacy, "audit", "verify")
    assert result.returncode == 0 and "intact: 7 rows" in result.stdout
    assert "rows 1-5 predate the audit key" in result.stdout
    rows = audit_rows(legacy)
    assert rows[5][3] == "audit chain sealed" and rows[5][8].startswith("hmac-sha256:")
    assert mlops_cli(legacy, "init").returncode == 0  # re-running init breaks nothing
    assert mlops_cli(legacy, "audit", "verify").returncode == 0
    conn = attacker(legacy)  # now a sealed legacy row can't be rewritten either
    conn.execute("UPDATE audit_log SET reason = 'rewritten' WHERE id = 2")
    rows = conn.execute(f"SELECT {COLUMNS} FROM audit_log WHERE id <= 5 ORDER BY id").fetchall()
    prev = "blake3:" + "0" * 64
    for row in rows:
        digest = plain_blake3(*row[:7], prev)
        conn.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?",
                     (prev, digest, row[0]))
        prev = digest
    conn.close()
    broken = mlops_cli(legacy, "audit", "verify")
    assert broken.returncode == 1 and "BROKEN at row 6" in broken.stdout


def test_a_broken_legacy_chain_is_not_sealed(legacy: Project) -> None:
    conn = attacker(legacy)
    conn.execute("UPDATE audit_log SET reason = 'edited' WHERE id = 2")
    conn.close()
    before = audit_rows(legacy)
    result = mlops_cli(legacy, "audit", "seal")
    assert result.returncode == 1 and "broken at row 2" in result.stderr
    assert audit_rows(legacy) == before


def test_the_head_of_an_empty_or_broken_log_is_refused(project: Project) -> None:
    empty = mlops_cli(project, "audit", "head")
    assert empty.returncode == 1 and "empty" in empty.stderr
    change_registry(project, 2)
    conn = attacker(project)
    conn.execute("UPDATE audit_log SET reason = 'x' WHERE id = 1")
    conn.close()
    broken = mlops_cli(project, "audit", "head")
    assert broken.returncode == 1 and "BROKEN at row 1" in broken.stdout


def test_verify_needs_no_key_for_an_empty_log(project: Project) -> None:
    find_project(project.root).audit_key_path.unlink()
    result = mlops_cli(project, "audit", "verify")
    assert result.returncode == 0 and "intact: 0 rows" in result.stdout
