"""Issue 9, evidence the requester can still steer: the evaluation data file and the gates.

The evaluation data is a file in the project and the gates are lines in its
config.toml, both writable by the requester. A request made on easy data, or
under a gate weakened for the moment, must not slip past a reviewer: changed
data is shown and needs an explicit, audited acknowledgement; data or gates
that differ at approval from what the evidence was computed with make it stale.
Real project, real SQLite, the real `mlops` command in a subprocess.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from jupyter_mlops import capture
from jupyter_mlops.errors import Conflict, NotFound, PermissionDenied
from jupyter_mlops.hashing import digest_file
from jupyter_mlops.project import Project
from jupyter_mlops.registry.gates import gate_set, parse_gate
from jupyter_mlops.registry.identity import identity_for
from jupyter_mlops.registry.releases import Registry
from tests.security import test_release_integrity as integrity
from tests.security.test_release_integrity import (
    EVALUATION,
    GATES,
    assert_one_line_error,
    mlops_cli,
    registry_of,
    snapshot,
    users,
)

released = integrity.released  # the fixture: cancer:1 in production, evaluated on eval.parquet
# Easy data holds one class only, on which ROC AUC is undefined (NaN in the evidence).
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")

ABSOLUTE = """
[[gates]]
check = "accuracy >= 0.9"
"""


def make_easy(project: Project) -> tuple[str, str]:
    """Overwrite the evaluation data with only the majority class, on which always
    predicting it (cancer:2, a DummyClassifier) is perfect. (old digest, new digest)"""
    path = project.root / "eval.parquet"
    before = digest_file(path)
    frame = pd.read_parquet(path)
    frame[frame["target"] == 1].to_parquet(path)
    return before, digest_file(path)


def request_as(project: Project, user: str, ref: str, alias: str = "production"):
    registry = registry_of(project)
    try:
        return registry.request_release(ref, alias, identity_for(user, registry.project),
                                        "please")
    finally:
        registry.store.close()


def audit_rows(project: Project, action: str) -> list[dict]:
    listed = json.loads(mlops_cli(project, "audit", "ls", "--json").stdout)
    return [row for row in listed if row["action"] == action]


def write_config(project: Project, *parts: str) -> None:
    (project.home / "config.toml").write_text("".join(parts))


# -- point 1: the evaluation data changed since the last approved release -----------------

def test_easy_data_is_shown_and_approval_takes_an_audited_acknowledgement(
        released: Project) -> None:
    me = capture.user()
    write_config(released, EVALUATION, GATES, users("alice", me))
    old, new = make_easy(released)
    request = request_as(released, "bob", "cancer:2")
    assert request.evidence["gates_passed"] is True  # the easy data did its job
    assert request.evidence["data"]["digest"] == new

    shown = mlops_cli(released, "release", "show", str(request.id))
    assert shown.returncode == 0, shown.stderr
    assert (f"DATA CHANGED evaluation data changed since release 1 (cancer:1 -> production): "
            f"eval.parquet {old} -> {new}") in shown.stdout
    assert "--accept-data-change" in shown.stdout and "STALE" not in shown.stdout
    as_json = json.loads(mlops_cli(released, "release", "show", str(request.id),
                                   "--json").stdout)
    assert as_json["data_change"] == {"since_request": 1, "from": old, "to": new,
                                      "from_path": "eval.parquet", "to_path": "eval.parquet"}
    assert as_json["stale"] == []

    before = snapshot(released)
    refused = mlops_cli(released, "release", "approve", str(request.id), "--reason", "passes")
    assert_one_line_error(refused, "evaluation data changed since release 1", old, new,
                          "--accept-data-change")
    assert snapshot(released) == before

    approved = mlops_cli(released, "release", "approve", str(request.id), "--reason",
                         "the new data is the Q3 sample, checked", "--accept-data-change")
    assert approved.returncode == 0, approved.stderr
    assert "approved" in approved.stdout
    (accepted,) = audit_rows(released, "evaluation data change accepted")
    assert accepted["actor"] == me and accepted["subject"] == "cancer:2"
    assert accepted["reason"] == "the new data is the Q3 sample, checked"
    assert accepted["payload"] == {"request": request.id, "since_request": 1, "from": old,
                                   "to": new, "from_path": "eval.parquet",
                                   "to_path": "eval.parquet"}
    assert audit_rows(released, "release approved")[0]["payload"]["data"] == new
    assert mlops_cli(released, "audit", "verify").returncode == 0
    shown = mlops_cli(released, "release", "show", str(request.id))
    assert f"{old} -> {new}: check the new data; approved by {me}" in shown.stdout


def test_unchanged_data_needs_no_acknowledgement(released: Project) -> None:
    request = request_as(released, "bob", "cancer:3")
    registry = registry_of(released)
    try:
        assert registry.data_change(request) is None
        done = registry.approve(request.id, identity_for("alice", registry.project), "ok")
    finally:
        registry.store.close()
    assert done.status == "approved"
    assert audit_rows(released, "evaluation data change accepted") == []
    assert "DATA CHANGED" not in mlops_cli(released, "release", "show", str(done.id)).stdout


def test_the_acknowledgement_is_asked_of_the_api_too(released: Project) -> None:
    make_easy(released)
    request = request_as(released, "bob", "cancer:3")
    registry = registry_of(released)
    try:
        alice = identity_for("alice", registry.project)
        with pytest.raises(PermissionDenied, match="evaluation data changed since release 1"):
            registry.approve(request.id, alice, "ok")
        assert registry.holder("cancer", "production").version == 1
        done = registry.approve(request.id, alice, "checked", accept_data_change=True)
        assert done.status == "approved"
        # The next release on the same data is compared with this one: nothing changed.
        again = registry.request_release("cancer:4", "production",
                                         identity_for("bob", registry.project), "next")
        assert registry.data_change(again) is None
    finally:
        registry.store.close()


def test_a_first_release_to_another_alias_is_compared_with_the_projects_last(
        released: Project) -> None:
    """The data file is the project's: a new alias doesn't escape the comparison."""
    write_config(released, EVALUATION.replace('["production"]', '["production", "canary"]'),
                 GATES, users("alice"))
    old, new = make_easy(released)
    request = request_as(released, "bob", "cancer:2", alias="canary")
    registry = registry_of(released)
    try:
        change = registry.data_change(request)
        assert change is not None and change.since.id == 1
        assert (change.before, change.after) == (old, new)
        with pytest.raises(PermissionDenied, match="--accept-data-change"):
            registry.approve(request.id, identity_for("alice", registry.project), "ok")
    finally:
        registry.store.close()


def test_data_changed_after_the_request_makes_the_evidence_stale(released: Project) -> None:
    me = capture.user()
    write_config(released, EVALUATION, GATES, users("alice", me))
    request = request_as(released, "bob", "cancer:3")
    path = released.root / "eval.parquet"
    original = path.read_bytes()
    old, new = make_easy(released)
    before = snapshot(released)
    refused = mlops_cli(released, "release", "approve", str(request.id), "--reason", "ok",
                        "--accept-data-change")
    assert_one_line_error(refused, "eval.parquet changed since the evidence was computed",
                          f"{old} -> {new}", "stale; request again")
    assert snapshot(released) == before
    shown = mlops_cli(released, "release", "show", str(request.id))
    assert "STALE       the evaluation data eval.parquet changed" in shown.stdout
    registry = registry_of(released)
    try:
        assert not registry.can_approve(request, identity_for("alice", registry.project))
    finally:
        registry.store.close()

    path.write_bytes(original)  # the same bytes again: the evidence holds again
    approved = mlops_cli(released, "release", "approve", str(request.id), "--reason", "ok")
    assert approved.returncode == 0, approved.stderr


@pytest.mark.parametrize("setting", ["other file", "other target", "unset"])
def test_a_changed_data_setting_makes_the_evidence_stale(released: Project,
                                                         setting: str) -> None:
    request = request_as(released, "bob", "cancer:3")
    path = released.root / "eval.parquet"
    evaluation = EVALUATION
    if setting == "other file":
        (released.root / "copy.parquet").write_bytes(path.read_bytes())
        evaluation = EVALUATION.replace('"eval.parquet"', '"copy.parquet"')
    elif setting == "other target":
        frame = pd.read_parquet(path)
        frame.rename(columns={"target": "label"}).to_parquet(path)
        evaluation = EVALUATION.replace('"target"', '"label"')
    else:
        evaluation = EVALUATION.replace("evaluation_data", "# evaluation_data")
    write_config(released, evaluation, GATES, users("alice"))
    registry = registry_of(released)
    try:
        with pytest.raises(Conflict, match="stale; request again") as info:
            registry.approve(request.id, identity_for("alice", registry.project), "ok",
                             accept_data_change=True)
        assert registry.holder("cancer", "production").version == 1
    finally:
        registry.store.close()
    assert "evaluation data" in str(info.value)


def test_the_file_is_checked_again_inside_the_approval(released: Project,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The data changes between the first check and the approval's write."""
    request = request_as(released, "bob", "cancer:3")
    registry = registry_of(released)
    checked = Registry.data_change

    def change_the_file_meanwhile(self: Registry, made):
        result = checked(self, made)
        make_easy(released)
        return result

    monkeypatch.setattr(Registry, "data_change", change_the_file_meanwhile)
    try:
        with pytest.raises(Conflict, match="changed since the evidence was computed"):
            registry.approve(request.id, identity_for("alice", registry.project), "ok")
        assert registry.store.releases.get(request.id).status == "pending"
        assert registry.holder("cancer", "production").version == 1
    finally:
        registry.store.close()


# -- point 2: the gates changed between the request and the approval ----------------------

def test_a_gate_weakened_for_the_request_and_restored_is_stale(released: Project) -> None:
    me = capture.user()
    strict = (EVALUATION, ABSOLUTE, users("alice", me))
    write_config(released, EVALUATION, ABSOLUTE.replace("0.9", "0.5"), users("alice", me))
    request = request_as(released, "bob", "cancer:2")  # the DummyClassifier, 0.63
    assert request.evidence["gates_passed"] is True
    assert request.evidence["gate_set"]["checks"] == ["accuracy >= 0.5"]
    write_config(released, *strict)  # restored before anyone looks

    before = snapshot(released)
    refused = mlops_cli(released, "release", "approve", str(request.id), "--reason", "ok")
    assert_one_line_error(refused, "gates for 'cancer' changed", "then: accuracy >= 0.5",
                          "now: accuracy >= 0.9", "stale; request again")
    assert snapshot(released) == before
    shown = mlops_cli(released, "release", "show", str(request.id))
    assert "STALE       the gates for 'cancer' changed" in shown.stdout
    registry = registry_of(released)
    try:
        assert not registry.can_approve(request, identity_for("alice", registry.project))
    finally:
        registry.store.close()
    assert mlops_cli(released, "release", "reject", str(request.id), "--reason",
                     "stale").returncode == 0
    again = request_as(released, "bob", "cancer:2")
    assert again.evidence["gates_passed"] is False  # judged by the real gate now


def test_gates_added_or_removed_make_the_evidence_stale(released: Project) -> None:
    request = request_as(released, "bob", "cancer:3")
    for gates in (GATES + ABSOLUTE, ""):
        write_config(released, EVALUATION, gates, users("alice"))
        registry = registry_of(released)
        try:
            with pytest.raises(Conflict, match="gates for 'cancer' changed"):
                registry.approve(request.id, identity_for("alice", registry.project), "ok")
        finally:
            registry.store.close()
    write_config(released, EVALUATION, GATES, users("alice"))
    registry = registry_of(released)
    try:
        done = registry.approve(request.id, identity_for("alice", registry.project), "ok")
    finally:
        registry.store.close()
    assert done.status == "approved"
    assert (audit_rows(released, "release approved")[0]["payload"]["gates"]
            == done.evidence["gate_set"]["digest"])


def test_a_gate_for_other_models_or_written_differently_changes_nothing(
        released: Project) -> None:
    request = request_as(released, "bob", "cancer:3")
    write_config(released, EVALUATION, """
[[gates]]
check = "accuracy>=production.accuracy-0.050"
[[gates]]
check = "accuracy >= 0.99"
models = ["churn"]
""", users("alice"))
    registry = registry_of(released)
    try:
        assert registry.stale_reasons(request) == []
        done = registry.approve(request.id, identity_for("alice", registry.project), "ok")
    finally:
        registry.store.close()
    assert done.status == "approved"


def test_gate_set_digests() -> None:
    def digest(*checks: str) -> str:
        return gate_set([parse_gate(c) for c in checks])["digest"]

    same = digest("accuracy >= 0.9", "recall >= production.recall - 0.01")
    assert digest("recall>=production.recall-0.010", "accuracy >= 0.90") == same
    assert digest("accuracy >= 0.9") != same
    assert digest("accuracy >= 0.8", "recall >= production.recall - 0.01") != same
    assert digest("accuracy > 0.9", "recall >= production.recall - 0.01") != same
    assert digest("accuracy >= 0.9", "recall >= production.recall + 0.01") != same
    assert digest("accuracy >= 0.9", "recall >= staging.recall - 0.01") != same


def test_evidence_from_before_gate_sets_is_judged_by_its_gate_results(
        released: Project) -> None:
    """A request made before evidence recorded its gate set (format 2): the texts of its
    gate results stand for the set."""
    registry = registry_of(released)
    try:
        version = registry.store.models.get("cancer", 3)
        evidence = dict(registry.compute_evidence(version, "production"))
        del evidence["gate_set"]
        evidence["format"] = 2
        older = registry.store.releases.request("cancer", 3, "production", requester="bob",
                                                reason="before the upgrade", evidence=evidence,
                                                holders=evidence["holders"])
        assert registry.stale_reasons(older) == []
        forged = dict(evidence, gates=[{"gate": "not a gate", "passed": True}])
        unknown = registry.store.releases.request("cancer", 4, "production", requester="bob",
                                                  reason="odd", evidence=forged)
        assert "unknown: the evidence does not record them" in " ".join(
            registry.stale_reasons(unknown))
        done = registry.approve(older.id, identity_for("alice", registry.project), "ok")
        assert done.status == "approved"
    finally:
        registry.store.close()


# -- point 3: ids past SQLite's integer range -------------------------------------------

@pytest.mark.parametrize("command", [["show"], ["approve", "--reason", "x"],
                                     ["reject", "--reason", "x"]])
@pytest.mark.parametrize("value", ["99999999999999999999", "9223372036854775808", "0", "-1",
                                   "abc"])
def test_request_ids_out_of_range_are_a_one_line_usage_error(
        released: Project, command: list[str], value: str) -> None:
    verb, *rest = command
    result = mlops_cli(released, "release", verb, value, *rest)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "OverflowError" not in result.stderr
    assert "is not a request id" in result.stderr.splitlines()[-1]


def test_the_largest_id_is_simply_not_found(released: Project) -> None:
    result = mlops_cli(released, "release", "show", "9223372036854775807")
    assert_one_line_error(result, "no release request 9223372036854775807")


def test_the_store_and_registry_say_not_found_past_the_range(released: Project) -> None:
    registry = registry_of(released)
    try:
        for call in (lambda: registry.store.releases.get(10**20),
                     lambda: registry.approve(10**20, identity_for("alice", registry.project),
                                              "x"),
                     lambda: registry.reject(-10**20, identity_for("alice", registry.project),
                                             "x")):
            with pytest.raises(NotFound, match="no release request"):
                call()
    finally:
        registry.store.close()


def test_the_cli_help_names_the_acknowledgement(released: Project) -> None:
    result = mlops_cli(released, "release", "approve", "--help")
    assert "--accept-data-change" in result.stdout
