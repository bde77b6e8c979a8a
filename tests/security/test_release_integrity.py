"""Issue 9, points 1, 2 and 4: the four-eyes rule can't be walked around.

Each test does what the attacker did, with the real `mlops` command in a
subprocess on a real project, and checks the refusal and that no row changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import jupyter_mlops as mlops
from jupyter_mlops import capture
from jupyter_mlops.errors import Conflict, PermissionDenied
from jupyter_mlops.hashing import digest_file
from jupyter_mlops.project import Project, find_project
from jupyter_mlops.registry.identity import identity_for
from jupyter_mlops.registry.releases import Registry
from jupyter_mlops.store import Store

GATES = """
[[gates]]
check = "accuracy >= production.accuracy - 0.05"
"""
EVALUATION = """
[registry]
protected_aliases = ["production"]
evaluation_data = "eval.parquet"
evaluation_target = "target"
"""


def users(*reviewers: str) -> str:
    return "".join(f"\n[users.{name}]\nroles = ['reviewer']\n" for name in reviewers)


def mlops_cli(project: Project, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess:
    """The real `mlops` command, in a separate process, in the project's root."""
    return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args],
                          capture_output=True, text=True, cwd=project.root, timeout=300,
                          env={**os.environ, "MLOPS_HOME": str(project.root), **(env or {})})


def snapshot(project: Project) -> dict[str, object]:
    """Everything a refused command must leave as it was."""
    with Store(project.db_path) as store:
        return {"aliases": store.releases.aliases(),
                "requests": [(r.id, r.status, r.decided_by) for r in store.releases.list()],
                "audit": store.audit.head(),
                "gates": store._conn.execute("SELECT count(*) FROM gate_results").fetchone()}


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture
def released(project: Project, tracker) -> Project:
    """cancer:1 (0.95 accurate) in production; cancer:2 a DummyClassifier (0.63);
    cancer:3 and cancer:4 other good models. Evaluation data: eval.parquet."""
    (project.home / "config.toml").write_text(EVALUATION + GATES + users("alice"))
    data = load_breast_cancer(as_frame=True).frame
    train, test = train_test_split(data, test_size=0.3, random_state=0, stratify=data["target"])
    test.to_parquet(project.root / "eval.parquet")
    X, y = train.drop(columns="target"), train["target"]

    def good(c: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500)).fit(X, y)

    with mlops.start_run(name="train"):
        mlops.log_model(good(1.0), name="cancer")
        mlops.log_model(DummyClassifier(strategy="most_frequent").fit(X, y), name="cancer")
        mlops.log_model(good(0.5), name="cancer")
        mlops.log_model(good(2.0), name="cancer")
    fresh = find_project()
    with Store(fresh.db_path) as store:
        registry = Registry(fresh, store)
        first = registry.request_release("cancer:1", "production",
                                         identity_for("bob", fresh), "first release")
        registry.approve(first.id, identity_for("alice", fresh), "checked")
    return fresh


def registry_of(project: Project) -> Registry:
    fresh = find_project(project.root)
    return Registry(fresh, Store(fresh.db_path))


# -- point 1: identity is the OS account, not $USER ------------------------------------

def test_user_and_logname_do_not_make_a_second_person(released: Project) -> None:
    me = capture.user()
    (released.home / "config.toml").write_text(EVALUATION + GATES
                                               + users("alice", "bob", me))
    before_request = snapshot(released)["audit"]
    made = mlops_cli(released, "release", "request", "cancer:3", "--to", "production",
                     "--reason", "better", env={"USER": "bob", "LOGNAME": "bob"})
    assert made.returncode == 0, made.stderr
    with Store(released.db_path) as store:
        request = store.releases.list("pending")[0]
        new_rows = [e for e in store.audit.entries() if e.id > before_request[0]]
    assert request.requester == me and new_rows and {e.actor for e in new_rows} == {me}
    before = snapshot(released)
    approved = mlops_cli(released, "release", "approve", str(request.id), "--reason", "lgtm",
                         env={"USER": "alice", "LOGNAME": "alice", "LNAME": "alice",
                              "USERNAME": "alice"})
    assert_one_line_error(approved, "may not approve it", "four eyes", me)
    assert snapshot(released) == before
    listed = json.loads(mlops_cli(released, "audit", "ls", "--json",
                                  env={"USER": "alice"}).stdout)
    assert listed[0]["actor"] == me and listed[0]["action"] == "release requested"


def test_capture_user_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import pwd

    for name in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "mallory")
    assert capture.user() == pwd.getpwuid(os.geteuid()).pw_name


# -- point 2: the requester can't choose the evidence ------------------------------------

def test_gates_on_chosen_data_are_not_the_evidence(released: Project) -> None:
    """The attack from the issue: a DummyClassifier passes on a file the requester picked
    (and against an alias it holds itself), but its request's evidence fails."""
    frame = load_breast_cancer(as_frame=True).frame
    chosen = released.root / "chosen.csv"
    frame[frame["target"] == 1].to_csv(chosen, index=False)  # only the majority class
    on_chosen = mlops_cli(released, "gates", "run", "cancer:2", "--data", "chosen.csv",
                          "--target", "target")
    assert on_chosen.returncode == 0 and "PASS" in on_chosen.stdout, on_chosen.stdout
    staged = mlops_cli(released, "models", "alias", "cancer:2", "staging", "--reason", "try")
    assert staged.returncode == 0, staged.stderr
    against = mlops_cli(released, "gates", "run", "cancer:2", "--against", "staging")
    assert against.returncode == 0 and "staging" in against.stdout, against.stdout

    made = mlops_cli(released, "release", "request", "cancer:2", "--to", "production",
                     "--reason", "the gates pass")
    assert made.returncode == 0, made.stderr
    assert "GATES FAILED" in made.stdout
    with Store(released.db_path) as store:
        request = store.releases.list("pending")[0]
    evidence = request.evidence
    assert evidence["gates_passed"] is False
    assert evidence["data"]["digest"] == digest_file(released.root / "eval.parquet")
    assert evidence["holders"] == {"production": 1}
    (gate,) = evidence["gates"]
    assert gate["against"] == "production" and gate["against_version"] == 1
    assert gate["value"] < 0.7 < 0.9 < gate["threshold"]

    shown = mlops_cli(released, "release", "show", str(request.id))
    assert "FAIL accuracy >= production.accuracy - 0.05" in shown.stdout
    assert "information only, not the verdict" in shown.stdout
    assert digest_file(chosen) in shown.stdout

    before = snapshot(released)
    registry = registry_of(released)
    try:
        with pytest.raises(PermissionDenied, match="gates failed"):
            registry.approve(request.id, identity_for("alice", registry.project), "they pass")
    finally:
        registry.store.close()
    assert snapshot(released) == before


def test_forged_stored_evaluations_are_not_reused(released: Project) -> None:
    """Evaluations stored on the configured data's digest are recomputed, not trusted."""
    digest = digest_file(released.root / "eval.parquet")
    with Store(released.db_path) as store:
        store.gates.add_evaluation("cancer", 2, digest, {"accuracy": 1.0})
        store.gates.add_evaluation("cancer", 1, digest, {"accuracy": 0.1})
    registry = registry_of(released)
    try:
        request = registry.request_release("cancer:2", "production",
                                           identity_for("bob", registry.project), "trust me")
    finally:
        registry.store.close()
    assert request.evidence["gates_passed"] is False
    assert request.evidence["candidate"]["metrics"]["accuracy"] < 0.7


def test_a_request_without_configured_evaluation_data_is_refused(released: Project) -> None:
    (released.home / "config.toml").write_text(GATES + users("alice"))
    before = snapshot(released)
    made = mlops_cli(released, "release", "request", "cancer:3", "--to", "production",
                     "--reason", "no data")
    assert_one_line_error(made, "evaluation_data", "evaluation_target", "[registry]")
    assert snapshot(released) == before


def test_approval_of_stale_evidence_is_refused(released: Project) -> None:
    registry = registry_of(released)
    try:
        bob, alice = (identity_for(n, registry.project) for n in ("bob", "alice"))
        stale = registry.request_release("cancer:3", "production", bob, "candidate A")
        other = registry.request_release("cancer:4", "production", bob, "candidate B")
        registry.approve(other.id, alice, "B first")
        assert registry.stale_aliases(registry.store.releases.get(stale.id)) == ["production"]
        before = snapshot(released)
        with pytest.raises(Conflict, match="stale; request again"):
            registry.approve(stale.id, alice, "A now")
        assert snapshot(released) == before
    finally:
        registry.store.close()
    shown = mlops_cli(released, "release", "show", str(stale.id))
    assert "STALE" in shown.stdout


def test_evidence_is_recomputed_when_the_holder_moves_meanwhile(
        released: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another reviewer's approval lands between computing the evidence and writing it."""
    registry = registry_of(released)
    compute = Registry.compute_evidence
    calls = []

    def compute_then_race(self: Registry, version, alias: str):
        evidence = compute(self, version, alias)
        if not calls:
            with Store(released.db_path) as other:
                other.releases.set_alias("cancer", "production", 4, actor="alice",
                                         reason="meanwhile")
        calls.append(evidence["holders"])
        return evidence

    monkeypatch.setattr(Registry, "compute_evidence", compute_then_race)
    try:
        request = registry.request_release("cancer:3", "production",
                                           identity_for("bob", registry.project), "race")
    finally:
        registry.store.close()
    assert calls == [{"production": 1}, {"production": 4}]
    assert request.evidence["holders"] == {"production": 4}
    assert request.evidence["current"]["ref"] == "cancer:4"


def test_requests_stay_consistent_when_the_data_changes_meanwhile(
        released: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = registry_of(released)
    compute = Registry.compute_evidence
    digests = []

    def compute_then_edit(self: Registry, version, alias: str):
        evidence = compute(self, version, alias)
        if not digests:
            data = released.root / "eval.parquet"
            import pandas as pd

            pd.read_parquet(data).iloc[:50].to_parquet(data)
        digests.append(evidence["data"]["digest"])
        return evidence

    monkeypatch.setattr(Registry, "compute_evidence", compute_then_edit)
    try:
        request = registry.request_release("cancer:3", "production",
                                           identity_for("bob", registry.project), "data")
    finally:
        registry.store.close()
    assert len(digests) == 2 and digests[0] != digests[1]
    assert request.evidence["data"]["digest"] == digest_file(released.root / "eval.parquet")
    assert request.evidence["data"]["rows"] == 50


# -- point 4: comparing with an alias nobody holds -----------------------------------------

def test_gates_against_an_unheld_alias_is_an_error(released: Project) -> None:
    before = snapshot(released)
    result = mlops_cli(released, "gates", "run", "cancer:2", "--against", "staging")
    assert_one_line_error(result, "'staging'", "cancer")
    assert "production" not in result.stderr and result.stdout == ""
    assert snapshot(released) == before


def test_gate_results_against_an_alias_name_it(released: Project) -> None:
    registry = registry_of(released)
    try:
        bob = identity_for("bob", registry.project)
        registry.set_alias("cancer:3", "staging", bob, "try")
        results = registry.run_gates("cancer:2", bob, against="staging")
    finally:
        registry.store.close()
    assert [(r.against, r.against_version) for r in results] == [("staging", 3)]
    assert "staging.accuracy" in results[0].reason and not results[0].passed


def test_bad_against_alias_names_are_refused(released: Project) -> None:
    result = mlops_cli(released, "gates", "run", "cancer:2", "--against", "../Prod")
    assert_one_line_error(result, "alias")


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_unreadable_evaluation_data_is_a_clear_error(released: Project, damage: str) -> None:
    path = released.root / "eval.parquet"
    if damage == "corrupt":
        path.write_bytes(b"PAR1 not really parquet")
    else:
        path.unlink()
    before = snapshot(released)
    made = mlops_cli(released, "release", "request", "cancer:3", "--to", "production",
                     "--reason", "broken data")
    assert_one_line_error(made, "eval.parquet")
    assert snapshot(released) == before
