"""Issue 9, point 5 (review): rows forged after the audit key existed are never blessed.

The attacker writes the database (triggers dropped) but cannot read the key.
They forge unkeyed rows and hope someone's `mlops audit seal` vouches for
them, forge a keyed-looking last row and hope the next honest write chains
onto it, or delete the key and hope `mlops init` writes a new one. Every check
goes through the real `mlops` command on a real SQLite file; each asserts the
refusal and that no row (and no key file) was written.
"""

from __future__ import annotations

import secrets

import pytest

from jupyter_mlops.errors import Conflict
from jupyter_mlops.project import Project
from jupyter_mlops.store import Store

from .test_audit_chain import (
    COLUMNS,
    attacker,
    audit_rows,
    change_registry,
    log_five_rows,
    mlops_cli,
    plain_blake3,
    rehash_everything,
)


@pytest.fixture
def logged(project: Project, tracker) -> Project:
    """Five keyed rows: churn:1 registered, then moved four times."""
    return log_five_rows(project)


def forge_unkeyed_rows(project: Project, count: int) -> None:
    """Append `count` rows hashed with plain BLAKE3, linked to the current end."""
    conn = attacker(project)
    last = conn.execute(f"SELECT {COLUMNS} FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    row_id, prev = (0, "blake3:" + "0" * 64) if last is None else (last[0], last[8])
    for _ in range(count):
        row_id += 1
        row = (row_id, 1.7e9 + row_id, "alice", "alias moved", "model:churn", "forged", "{}")
        digest = plain_blake3(*row, prev)
        conn.execute(f"INSERT INTO audit_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (*row, prev, digest))
        prev = digest
    conn.close()


def refused(project: Project, *args: str, expect: str) -> None:
    before = audit_rows(project)
    result = mlops_cli(project, *args)
    assert result.returncode == 1, result.stdout
    assert expect in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert audit_rows(project) == before


@pytest.fixture
def upgraded(project: Project) -> Project:
    """A store written before the keyed log (three plain BLAKE3 rows, no key), upgraded
    with `mlops init`: its key file records that the unkeyed log ends at row 3."""
    change_registry(project, 3)
    conn = attacker(project)
    rehash_everything(conn)
    conn.close()
    project.audit_key_path.unlink()
    assert mlops_cli(project, "init").returncode == 0
    assert "legacy-head: 3:blake3:" in project.audit_key_path.read_text()
    return project


# -- mlops audit seal ------------------------------------------------------------------------

def test_a_keyed_log_rewritten_as_unkeyed_is_not_sealed(logged: Project) -> None:
    """The attacker re-hashes every keyed row with plain BLAKE3: the log now looks like
    one that predates the key, but the key file says the log was empty when it was made."""
    conn = attacker(logged)
    conn.execute("UPDATE audit_log SET reason = 'nothing to see' WHERE id = 3")
    rehash_everything(conn)
    conn.close()
    refused(logged, "audit", "seal", expect="was created when the audit log was empty (forged")
    assert mlops_cli(logged, "audit", "verify").returncode == 1


def test_unkeyed_rows_after_keyed_ones_are_not_sealed(logged: Project) -> None:
    forge_unkeyed_rows(logged, 2)
    refused(logged, "audit", "seal", expect="rows 6-7 carry no MAC after keyed row 5 (forged")


def test_unkeyed_rows_in_a_log_keyed_from_the_start_are_not_sealed(project: Project) -> None:
    forge_unkeyed_rows(project, 3)
    refused(project, "audit", "seal", expect="rows 1-3 carry no MAC, and the audit key")


def test_an_upgraded_store_seals_exactly_its_legacy_rows(upgraded: Project) -> None:
    sealed = mlops_cli(upgraded, "audit", "seal")
    assert sealed.returncode == 0 and "keyed row 4" in sealed.stdout, sealed.stderr
    verified = mlops_cli(upgraded, "audit", "verify")
    assert verified.returncode == 0 and "rows 1-3 predate the audit key" in verified.stdout


def test_unkeyed_rows_written_after_the_upgrade_are_not_sealed(upgraded: Project) -> None:
    forge_unkeyed_rows(upgraded, 2)
    refused(upgraded, "audit", "seal",
            expect="rows 4-5 carry no MAC after row 3, where the unkeyed log ended")


def test_legacy_rows_rewritten_after_the_upgrade_are_not_sealed(upgraded: Project) -> None:
    conn = attacker(upgraded)
    conn.execute("UPDATE audit_log SET actor = 'alice' WHERE id = 1")
    rehash_everything(conn)
    conn.close()
    refused(upgraded, "audit", "seal", expect="row 3 differs from the one the audit key")


def test_legacy_rows_cut_after_the_upgrade_are_not_sealed(upgraded: Project) -> None:
    conn = attacker(upgraded)
    conn.execute("DELETE FROM audit_log WHERE id = 3")
    conn.close()
    refused(upgraded, "audit", "seal", expect="rows were cut off")


def test_a_key_file_made_by_hand_seals_a_log_without_keyed_rows(upgraded: Project) -> None:
    """A key file that records nothing (made with `openssl rand -hex 32`) can only take the
    unkeyed rows as they stand, as long as no keyed row exists."""
    key = upgraded.audit_key_path
    key.write_text(secrets.token_hex(32) + "\n")
    sealed = mlops_cli(upgraded, "audit", "seal")
    assert sealed.returncode == 0 and "keyed row 4" in sealed.stdout, sealed.stderr
    forge_unkeyed_rows(upgraded, 1)
    refused(upgraded, "audit", "seal", expect="row 5 carries no MAC after keyed row 4")


# -- the next append checks the last row -----------------------------------------------------

def forge_last_row(project: Project, *, mac: str | None = None, prev: str | None = None,
                   row_id: int | None = None) -> None:
    """Append a row that looks keyed: a random MAC (no key), linked to the end unless told."""
    conn = attacker(project)
    last_id, last_hash = conn.execute(
        "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    conn.execute(f"INSERT INTO audit_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (row_id or last_id + 1, 1.7e9, "alice", "release approved", "model:churn",
                  "forged", "{}", prev or last_hash,
                  mac or "hmac-sha256:" + secrets.token_hex(32)))
    conn.close()


def alias_refused(project: Project, expect: str) -> None:
    with Store(project.db_path) as store:
        aliases = store.releases.aliases()
    refused(project, "models", "alias", "churn:1", "canary", "--reason", "after a forgery",
            expect=expect)
    with Store(project.db_path) as store:
        assert store.releases.aliases() == aliases  # the move was rolled back with the row
        with pytest.raises(Conflict, match="can't be chained onto|forged"):
            store.releases.set_alias("churn", "canary", 1, actor="bob", reason="api")


def test_a_forged_last_row_is_found_by_the_next_write(logged: Project) -> None:
    forge_last_row(logged)
    alias_refused(logged, "last row 6 can't be chained onto: its content does not match")


def test_an_edited_last_row_is_found_by_the_next_write(logged: Project) -> None:
    conn = attacker(logged)
    conn.execute("UPDATE audit_log SET reason = 'edited' WHERE id = 5")
    conn.close()
    alias_refused(logged, "last row 5 can't be chained onto: its content does not match")


def test_a_last_row_with_a_broken_link_is_found_by_the_next_write(logged: Project) -> None:
    rows = audit_rows(logged)
    forge_last_row(logged, mac=rows[4][8], prev=rows[3][8])  # row 5's MAC copied as row 6
    alias_refused(logged, "last row 6 can't be chained onto: its link")


def test_a_gap_before_the_last_row_is_found_by_the_next_write(logged: Project) -> None:
    conn = attacker(logged)
    conn.execute("DELETE FROM audit_log WHERE id = 4")
    conn.close()
    alias_refused(logged, "last row 5 can't be chained onto: row 4 before it is missing")


def test_an_unkeyed_last_row_after_keyed_ones_is_found_by_the_next_write(
        logged: Project) -> None:
    forge_unkeyed_rows(logged, 1)
    alias_refused(logged, "row 6 carries no MAC but follows keyed rows")


def test_honest_writes_chain_on(logged: Project) -> None:
    change_registry(logged, 3)
    assert mlops_cli(logged, "audit", "verify").stdout.startswith("audit chain intact: 8 rows")


# -- mlops init and a missing key ------------------------------------------------------------

def test_init_writes_no_new_key_for_a_keyed_log(logged: Project) -> None:
    logged.audit_key_path.unlink()
    refused(logged, "init", expect="No new key was written")
    assert not logged.audit_key_path.exists()
    for command in (["audit", "verify"], ["audit", "head"]):
        result = mlops_cli(logged, *command)
        assert result.returncode == 1 and "until that file is restored" in result.stderr
        assert "mlops init" not in result.stderr


def test_init_keeps_an_existing_key(logged: Project) -> None:
    key = logged.audit_key_path.read_bytes()
    assert mlops_cli(logged, "init").returncode == 0
    assert logged.audit_key_path.read_bytes() == key
    assert mlops_cli(logged, "audit", "verify").returncode == 0


def test_a_new_project_records_an_empty_log(project: Project) -> None:
    lines = project.audit_key_path.read_text().splitlines()
    assert len(lines) == 2 and len(bytes.fromhex(lines[0])) == 32
    assert lines[1] == "legacy-head: none"
    change_registry(project, 1)
    assert mlops_cli(project, "audit", "verify").returncode == 0
