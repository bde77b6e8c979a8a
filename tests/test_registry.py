"""Governance rules at the API level, with a real store and real models."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from dataclasses import replace

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import jupyter_mlops as mlops
from jupyter_mlops import capture
from jupyter_mlops.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from jupyter_mlops.project import find_project
from jupyter_mlops.registry.identity import identity_for
from jupyter_mlops.registry.releases import Registry
from jupyter_mlops.store import Store

CONFIG = """
[registry]
protected_aliases = ["production"]
evaluation_data = "eval.parquet"
evaluation_target = "target"

[[gates]]
check = "accuracy >= 0.8"
[[gates]]
check = "recall >= production.recall - 0.01"
[[gates]]
check = "brier <= 0.2"

[users.alice]
roles = ["reviewer"]
[users.carol]
roles = ["admin"]
"""


@pytest.fixture
def governed(project, tracker):
    (project.home / "config.toml").write_text(CONFIG)
    data = load_breast_cancer(as_frame=True).frame
    train, test = train_test_split(data, test_size=0.3, random_state=0, stratify=data["target"])
    test.to_parquet(project.root / "eval.parquet")
    X, y = train.drop(columns="target"), train["target"]
    good = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    bad = DummyClassifier(strategy="most_frequent").fit(X, y)
    with mlops.start_run(name="train"):
        mlops.log_model(good, name="cancer")   # cancer:1
        mlops.log_model(bad, name="cancer")    # cancer:2, fails accuracy and brier
        mlops.log_model(good, name="cancer")   # cancer:3
    fresh = find_project()
    store = Store(fresh.db_path)
    yield Registry(fresh, store)
    store.close()


def who(registry: Registry, user: str):
    return identity_for(user, registry.project)


def release(registry: Registry, ref: str, requester: str = "bob"):
    return registry.request_release(ref, "production", who(registry, requester), "ship it")


def test_approval_moves_the_alias_and_load_model_follows(governed: Registry) -> None:
    request = release(governed, "cancer:1")
    assert request.status == "pending" and request.evidence["gates_passed"] is True
    assert governed.holder("cancer", "production") is None
    done = governed.approve(request.id, who(governed, "alice"), "metrics look right")
    assert done.status == "approved" and done.decided_by == "alice"
    assert governed.resolve("cancer@production").version == 1
    assert mlops.load_model("cancer@production").predict is not None
    actions = [e.action for e in governed.store.audit.entries()]
    assert actions[:3] == ["alias moved", "release approved", "release requested"]


def test_nobody_approves_their_own_request(governed: Registry) -> None:
    request = release(governed, "cancer:1", requester="alice")
    with pytest.raises(PermissionDenied, match="four eyes"):
        governed.approve(request.id, who(governed, "alice"), "mine")
    assert not governed.can_approve(request, who(governed, "alice"))
    assert governed.can_approve(request, who(governed, "carol"))


def test_only_reviewers_approve_or_reject(governed: Registry) -> None:
    request = release(governed, "cancer:1")
    for action in (governed.approve, governed.reject):
        with pytest.raises(PermissionDenied, match="reviewer role"):
            action(request.id, who(governed, "mallory"), "let me")
    assert governed.holder("cancer", "production") is None


def test_failing_gates_block_unless_an_admin_overrides(governed: Registry) -> None:
    request = release(governed, "cancer:2")
    assert request.evidence["gates_passed"] is False
    with pytest.raises(PermissionDenied, match="gates failed"):
        governed.approve(request.id, who(governed, "alice"), "looks fine")
    with pytest.raises(PermissionDenied, match="admin role"):
        governed.approve(request.id, who(governed, "alice"), "ok", override_reason="hotfix")
    with pytest.raises(InvalidInput, match="override reason is required"):
        governed.approve(request.id, who(governed, "carol"), "ok", override_reason="  ")
    done = governed.approve(request.id, who(governed, "carol"), "emergency",
                            override_reason="incident 42: the old model leaks PII")
    assert done.status == "approved" and done.override_reason.startswith("incident 42")
    overrides = [e for e in governed.store.audit.entries() if e.action == "gates overridden"]
    assert overrides[0].actor == "carol" and "PII" in overrides[0].reason


def test_rejection_and_protected_aliases_never_move(governed: Registry) -> None:
    request = release(governed, "cancer:1")
    governed.reject(request.id, who(governed, "alice"), "not this week")
    assert governed.holder("cancer", "production") is None
    with pytest.raises(Conflict, match="already rejected"):
        governed.approve(request.id, who(governed, "carol"), "too late")
    with pytest.raises(PermissionDenied, match="protected"):
        governed.set_alias("cancer:1", "production", who(governed, "carol"), "shortcut")
    governed.set_alias("cancer:3", "staging", who(governed, "bob"), "try it")
    assert governed.resolve("cancer@staging").version == 3


def test_a_rollback_is_a_release_request_like_any_other(governed: Registry) -> None:
    first = release(governed, "cancer:1")
    governed.approve(first.id, who(governed, "alice"), "first")
    second = release(governed, "cancer:3")
    governed.approve(second.id, who(governed, "alice"), "second")
    back = release(governed, "cancer:1")
    governed.approve(back.id, who(governed, "carol"), "roll back")
    assert governed.resolve("cancer@production").version == 1


def test_comparison_gates_use_the_current_holder(governed: Registry) -> None:
    governed.approve(release(governed, "cancer:1").id, who(governed, "alice"), "ok")
    results = {r.gate: r for r in governed.run_gates("cancer:2", who(governed, "bob"))}
    comparison = results["recall >= production.recall - 0.01"]
    assert comparison.against_version == 1
    assert {r.gate: r.passed for r in results.values()} == {
        "accuracy >= 0.8": False, "recall >= production.recall - 0.01": True,
        "brier <= 0.2": False}  # always predicting "benign" has perfect recall


def test_gates_on_different_data_fail_with_that_reason(governed: Registry, project) -> None:
    governed.approve(release(governed, "cancer:1").id, who(governed, "alice"), "ok")
    governed.store.gates.add_evaluation("cancer", 1, "blake3:" + "a" * 64,
                                        {"recall": 0.9, "accuracy": 0.9, "brier": 0.1})
    governed.store.gates.add_evaluation("cancer", 3, "blake3:" + "b" * 64,
                                        {"recall": 0.95, "accuracy": 0.9, "brier": 0.1})
    settings = replace(governed.project.registry, evaluation_data=None, evaluation_target=None)
    no_data = Registry(replace(governed.project, registry=settings), governed.store)
    results = {r.gate: r for r in no_data.run_gates("cancer:3", who(governed, "bob"))}
    comparison = results["recall >= production.recall - 0.01"]
    assert not comparison.passed and "different data" in comparison.reason


@pytest.mark.parametrize(("call", "message"), [
    (lambda r: r.request_release("cancer:1", "production", who(r, "bob"), ""), "reason"),
    (lambda r: r.request_release("cancer:1", "Prod <x>", who(r, "bob"), "x"), "alias"),
    (lambda r: r.request_release("cancer:9", "production", who(r, "bob"), "x"), "no model"),
    (lambda r: r.request_release("../x", "production", who(r, "bob"), "x"), "no model"),
    (lambda r: r.approve(999, who(r, "alice"), "x"), "no release request 999"),
    (lambda r: r.request_release("cancer:1", "production", who(r, "bob"), "x" * 5000), "under"),
])
def test_bad_input_is_refused(governed: Registry, call, message: str) -> None:
    with pytest.raises((InvalidInput, NotFound)) as info:
        call(governed)
    assert message in str(info.value)


def test_the_audit_log_refuses_updates_and_deletes(governed: Registry) -> None:
    conn = governed.store._conn
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor = 'eve' WHERE id = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit_log WHERE id = 1")
    assert governed.store.audit.verify().ok


def test_the_chain_catches_edits_and_deletions_with_triggers_dropped(governed: Registry) -> None:
    release(governed, "cancer:1")
    governed.set_alias("cancer:3", "staging", who(governed, "bob"), "a")
    governed.set_alias("cancer:1", "staging", who(governed, "bob"), "b")
    conn = governed.store._conn
    rows = governed.store.audit.verify().rows
    assert rows >= 5
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("DROP TRIGGER audit_log_no_delete")
    conn.execute("UPDATE audit_log SET reason = 'nothing to see' WHERE id = 3")
    report = governed.store.audit.verify()
    assert not report.ok and report.first_broken == 3 and "content" in report.problem
    result = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "audit", "verify"],
                            capture_output=True, text=True, cwd=governed.project.root)
    assert result.returncode == 1 and "BROKEN at row 3" in result.stdout


def test_the_chain_catches_a_deleted_row(governed: Registry) -> None:
    governed.set_alias("cancer:3", "staging", who(governed, "bob"), "a")
    governed.set_alias("cancer:1", "staging", who(governed, "bob"), "b")
    conn = governed.store._conn
    conn.execute("DROP TRIGGER audit_log_no_delete")
    conn.execute("DELETE FROM audit_log WHERE id = 2")
    report = governed.store.audit.verify()
    assert not report.ok and report.first_broken == 3 and "row 2 is missing" in report.problem


APPROVE = """
import sys
from jupyter_mlops.project import find_project
from jupyter_mlops.registry.identity import identity_for
from jupyter_mlops.registry.releases import Registry
from jupyter_mlops.store import Store
project = find_project()
with Store(project.db_path) as store:
    Registry(project, store).approve(int(sys.argv[1]), identity_for("alice", project), "ok")
"""


def test_twenty_concurrent_approvals_keep_the_chain_linear(governed: Registry) -> None:
    requests = []
    for index in range(20):
        alias = f"canary-{index}"
        version = governed.store.models.get("cancer", 1 + 2 * (index % 2))
        requests.append(governed.store.releases.request(
            "cancer", version.version, alias, requester="bob", reason="fan out",
            evidence=governed.compute_evidence(version, alias)))
    procs = [subprocess.Popen([sys.executable, "-c", APPROVE, str(r.id)],
                              cwd=governed.project.root, stderr=subprocess.PIPE, text=True)
             for r in requests]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    report = governed.store.audit.verify()
    assert report.ok
    approvals = [e for e in governed.store.audit.entries() if e.action == "release approved"]
    assert len(approvals) == 20
    assert len(governed.store.releases.aliases("cancer")) == 20


def test_cli_maps_the_os_user_and_refuses_self_approval(governed: Registry, project) -> None:
    me = capture.user()
    (project.home / "config.toml").write_text(CONFIG + f"\n[users.{me}]\nroles = ['reviewer']\n")

    def mlops_cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args],
                              capture_output=True, text=True, cwd=project.root, timeout=300)

    made = mlops_cli("release", "request", "cancer:1", "--to", "production", "--reason", "go")
    assert made.returncode == 0, made.stderr
    assert "release request 1: cancer:1 -> production (gates passed)" in made.stdout
    own = mlops_cli("release", "approve", "1", "--reason", "mine")
    assert own.returncode == 1 and "may not approve it" in own.stderr
    assert "Traceback" not in own.stderr
    shown = mlops_cli("models", "show", "cancer:1")
    assert "release     #1 -> production pending, gates passed" in shown.stdout
    listed = mlops_cli("models", "ls", "--json")
    assert '"name": "cancer"' in listed.stdout
    gates = mlops_cli("gates", "run", "cancer:2")
    assert gates.returncode == 1 and "FAIL" in gates.stdout
    assert mlops_cli("audit", "verify").returncode == 0
    assert "release requested" in mlops_cli("audit", "ls").stdout


def test_older_requests_are_checked_against_the_holder_they_recorded(governed: Registry
                                                                     ) -> None:
    """Requests from before evidence recorded its holders name the holder as `current`."""
    older = governed.store.releases.request(
        "cancer", 3, "production", requester="bob", reason="made before the upgrade",
        evidence={"gates": [], "gates_passed": True, "current": None})
    governed.approve(release(governed, "cancer:1").id, who(governed, "alice"), "first")
    assert governed.stale_aliases(governed.store.releases.get(older.id)) == ["production"]
    with pytest.raises(Conflict, match="stale"):
        governed.approve(older.id, who(governed, "alice"), "too late")
    assert governed.resolve("cancer@production").version == 1


def test_without_gates_a_request_needs_no_evaluation_data(governed: Registry) -> None:
    settings = replace(governed.project.registry, gates=(), evaluation_data=None,
                       evaluation_target=None)
    plain = Registry(replace(governed.project, registry=settings), governed.store)
    request = plain.request_release("cancer:2", "production", who(plain, "bob"), "no gates")
    assert request.evidence["gates"] == [] and request.evidence["gates_passed"] is True
    assert request.evidence["data"] is None
    assert request.evidence["holders"] == {"production": None}
    done = plain.approve(request.id, who(plain, "alice"), "nothing to check")
    assert done.status == "approved"


def test_concurrent_duplicate_requests_make_exactly_one(governed: Registry) -> None:
    """The duplicate-pending check runs inside the request's transaction."""
    import threading

    outcomes: list[object] = []

    def ask() -> None:
        try:
            outcomes.append(release(governed, "cancer:1"))
        except Conflict as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    made = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(made) == 1 and len(refused) == 3
    assert all("already pending" in str(exc) for exc in refused)
    assert len(governed.store.releases.list(name="cancer")) == 1


def test_a_registration_that_fails_midway_leaves_no_part_of_the_version(project) -> None:
    """Version row, audit row, blob record, run link and profile: one transaction, so
    a failure at the last part (here the profile) keeps none of the others."""
    from jupyter_mlops.artifacts import ArtifactStore
    from jupyter_mlops.recorders import StoreRecorder

    with Store.for_project(project) as store:
        recorder = StoreRecorder(store, ArtifactStore(project.artifacts_dir))
        audit_rows = len(store.audit.entries())
        with pytest.raises(TypeError):
            recorder.register_model(None, "m", b"model bytes", "sklearn-skops", None,
                                    profile={"unserializable": object()})
        assert store.models.names() == []
        assert len(store.audit.entries()) == audit_rows
        assert list(store.artifacts.all_digests()) == []


def _edit(registry: Registry, sql: str, *args: object) -> None:
    """What someone with write access to the database, but not the audit key, can do."""
    with sqlite3.connect(registry.project.db_path) as conn:
        conn.execute(sql, args)


def test_evidence_edited_in_the_database_is_refused_at_approval(governed: Registry) -> None:
    import json

    from jupyter_mlops.errors import IntegrityError

    request = release(governed, "cancer:2")  # a dummy model: the gates fail
    forged = dict(request.evidence, gates_passed=True,
                  gates=[dict(g, passed=True) for g in request.evidence["gates"]])
    _edit(governed, "UPDATE release_requests SET evidence = ? WHERE id = ?",
          json.dumps(forged), request.id)
    with pytest.raises(IntegrityError, match="gates verdict"):
        governed.approve(request.id, who(governed, "alice"), "looks fine")
    assert governed.holder("cancer", "production") is None


def test_a_requester_edited_in_the_database_cannot_make_four_eyes_two(governed: Registry
                                                                     ) -> None:
    from jupyter_mlops.errors import IntegrityError

    request = release(governed, "cancer:1", requester="alice")
    _edit(governed, "UPDATE release_requests SET requester = 'bob' WHERE id = ?", request.id)
    with pytest.raises(IntegrityError, match="requester"):
        governed.approve(request.id, who(governed, "alice"), "mine, in disguise")
    assert governed.holder("cancer", "production") is None


def test_a_request_inserted_in_the_database_has_no_signed_row(governed: Registry) -> None:
    from jupyter_mlops.errors import IntegrityError

    genuine = release(governed, "cancer:1")
    governed.reject(genuine.id, who(governed, "alice"), "copying its evidence")
    _edit(governed, "INSERT INTO release_requests (name, version, alias, requester, reason, "
          "evidence, status, created_at) SELECT name, 3, alias, 'bob', 'sneaky', evidence, "
          "'pending', created_at FROM release_requests WHERE id = ?", genuine.id)
    [inserted] = [r for r in governed.store.releases.list(status="pending")]
    with pytest.raises(IntegrityError, match="written into the database directly"):
        governed.approve(inserted.id, who(governed, "alice"), "ok")
    assert governed.holder("cancer", "production") is None


def test_an_alias_moved_by_editing_the_database_fails_audit_verify(governed: Registry,
                                                                    capsys) -> None:
    from jupyter_mlops.cli.main import main

    governed.approve(release(governed, "cancer:1").id, who(governed, "alice"), "ok")
    assert main(["audit", "verify"]) == 0
    capsys.readouterr()
    _edit(governed, "UPDATE aliases SET version = 2 WHERE alias = 'production'")
    assert main(["audit", "verify"]) == 1
    assert "cancer@production points at version 2, but the audit log last moved it to 1" \
        in capsys.readouterr().out
